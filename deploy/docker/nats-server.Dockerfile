# NATS server with JetStream, built from the nats-server version pinned in go.mod.
#
# The build context is dist/nats-server/, prepared by `make images` (mk/images.mk) or by the
# integration harness; see deploy/docker/README.md for its layout. No base image is pulled:
# everything in the image is in the context.
FROM scratch

COPY etc/passwd etc/group /etc/
COPY etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY nats-server /usr/local/bin/nats-server
# scratch has no shell to chown at build time, so the context ships an empty data/ directory
# and COPY --chown hands it to the apiops user: the JetStream store is the only path the
# server writes, which keeps the image usable with a read-only root filesystem.
COPY --chown=65532:65532 data /data

USER 65532:65532
VOLUME ["/data"]
# 4222 clients, 6222 cluster routes, 8222 HTTP monitoring (/healthz, /varz, /jsz).
EXPOSE 4222 6222 8222

ENTRYPOINT ["/usr/local/bin/nats-server"]
# Arguments replace this whole list (docker run ... -js -sd /data --cluster ...), so keep the
# store directory in any override.
CMD ["--jetstream", "--store_dir", "/data", "--http_port", "8222"]
