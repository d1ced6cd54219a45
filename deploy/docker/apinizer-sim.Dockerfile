# The Apinizer simulator (./cmd/apinizer-sim): a fake Apinizer management API with scripted
# faults, used by the integration suites and for local runs.
#
# Build context: dist/apinizer-sim/ (see deploy/docker/README.md). State is in memory only,
# so the root filesystem can be read-only.
FROM scratch

COPY etc/passwd etc/group /etc/
COPY etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY apinizer-sim /usr/local/bin/apinizer-sim

USER 65532:65532
# HTTP API, /healthz and /_sim/* control endpoints.
EXPOSE 8080

ENTRYPOINT ["/usr/local/bin/apinizer-sim"]
