# Prometheus rules and the Grafana dashboard. Included by the main Makefile; `make test` runs
# test-rules. promtool comes from Debian's prometheus package (.ci/run installs it when
# missing); the end-to-end test in deploy/prometheus runs the same package's prometheus.
# See docs/metrics.md.

PROMTOOL       ?= promtool
PROM_DIR       ?= deploy/prometheus

.PHONY: test-rules check-promtool

# promtool comes from Debian's prometheus package; installed here when missing, as on a fresh
# machine `make test` must work by itself (sudo when not root).
check-promtool:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { \
		echo "$(PROMTOOL) not found: installing Debian's prometheus package" >&2; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends prometheus; }
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { \
		echo "$(PROMTOOL) still not found: install Debian's prometheus package, or set PROMTOOL=/path/to/promtool" >&2; exit 1; }

## test-rules: promtool check config and rules, then promtool test rules (every alert fires and clears)
test-rules: check-promtool
	$(PROMTOOL) check config $(PROM_DIR)/prometheus.yml
	$(PROMTOOL) check rules $(PROM_DIR)/rules.yml
	$(PROMTOOL) test rules $(PROM_DIR)/rules_test.yml
