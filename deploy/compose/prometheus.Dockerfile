# Prometheus for the Compose stack when no image can be pulled: the host's Debian prometheus
# binary in a scratch image. Debian's binary is dynamically linked against glibc only
# (`ldd /usr/bin/prometheus`: libc.so.6 and the loader), so the context carries those two files
# too. `make compose-up` lays the context out (mk/deploy.mk, target compose-prometheus-image)
# when /usr/bin/prometheus exists; elsewhere Compose uses the upstream prom/prometheus image.
#
# Same layout as prom/prometheus: the binary is the entrypoint, /prometheus is the data
# volume owned by nobody (65534), the configuration comes from a mount in /etc/prometheus.
FROM scratch

COPY rootfs/ /
COPY --chown=65534:65534 data /prometheus

USER 65534:65534
VOLUME ["/prometheus"]
EXPOSE 9090

ENTRYPOINT ["/bin/prometheus"]
