# Prometheus rules and the Grafana dashboard. Included by the main Makefile; `make test` runs
# test-rules. See docs/metrics.md.

PROMTOOL       ?= promtool
PROM_DIR       ?= deploy/prometheus

.PHONY: test-rules tools-prometheus

## tools-prometheus: install Debian's prometheus package when promtool is missing (or prometheus, with PROMETHEUS_REQUIRED=true as in CI)
# On a fresh machine `make test` must work by itself; tools/apt-install.sh uses sudo when not root.
tools-prometheus:
	@tools/apt-install.sh $(PROMTOOL):prometheus $(if $(filter true,$(PROMETHEUS_REQUIRED)),prometheus) || { \
		echo "install Debian's prometheus package, or set PROMTOOL=/path/to/promtool" >&2; exit 1; }

## test-rules: promtool check config and rules, then promtool test rules (every alert fires and clears)
test-rules: tools-prometheus
	$(PROMTOOL) check config $(PROM_DIR)/prometheus.yml
	$(PROMTOOL) check rules $(PROM_DIR)/rules.yml
	$(PROMTOOL) test rules $(PROM_DIR)/rules_test.yml
