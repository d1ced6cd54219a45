# Prometheus rules and the Grafana dashboard. Included by the main Makefile; `make test` runs
# test-rules. promtool comes from Debian's prometheus package (.ci/run installs it when
# missing); the end-to-end test in deploy/prometheus runs the same package's prometheus.
# See docs/metrics.md.

PROMTOOL       ?= promtool
PROM_DIR       ?= deploy/prometheus

.PHONY: test-rules check-promtool

check-promtool:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { \
		echo "$(PROMTOOL) not found: install Debian's prometheus package" >&2; \
		echo "  (apt-get install --no-install-recommends prometheus), or set PROMTOOL=/path/to/promtool" >&2; \
		exit 1; }

## test-rules: promtool check config and rules, then promtool test rules (every alert fires and clears)
test-rules: check-promtool
	$(PROMTOOL) check config $(PROM_DIR)/prometheus.yml
	$(PROMTOOL) check rules $(PROM_DIR)/rules.yml
	$(PROMTOOL) test rules $(PROM_DIR)/rules_test.yml
