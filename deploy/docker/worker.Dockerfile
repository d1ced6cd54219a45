# The APIOps worker (./cmd/worker): consumes job subjects from JetStream and calls Apinizer.
#
# Build context: dist/worker/ (see deploy/docker/README.md). The worker writes nothing to
# disk, so the container runs with a read-only root filesystem.
FROM scratch

COPY etc/passwd etc/group /etc/
# The worker calls Apinizer over HTTPS: Go's crypto/x509 reads this bundle.
COPY etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY worker /usr/local/bin/worker

USER 65532:65532
# METRICS_ADDR: /metrics, /healthz, /readyz.
EXPOSE 9090

ENTRYPOINT ["/usr/local/bin/worker"]
