# The enqueue CLI (./cmd/enqueue): publishes one job to JetStream and exits.
#
# Build context: dist/enqueue/ (see deploy/docker/README.md). Nothing is listened on and
# nothing is written, so no port is exposed and the root filesystem can be read-only.
FROM scratch

COPY etc/passwd etc/group /etc/
# NATS over TLS needs the system roots.
COPY etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY enqueue /usr/local/bin/enqueue

USER 65532:65532

ENTRYPOINT ["/usr/local/bin/enqueue"]
