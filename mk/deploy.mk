# Deployment files: the Compose stack (deploy/compose/) and the Kubernetes manifests
# (deploy/kubernetes/). Included by the main Makefile, after mk/vars.mk and mk/images.mk (it
# uses the images target). See docs/deployment.md.

# kustomize, pinned: v5.8.3 and later need Go 1.27.
KUSTOMIZE_VERSION ?= v5.8.2
GOBIN_DIR       := $(shell $(GO) env GOPATH)/bin
KUSTOMIZE       ?= $(GOBIN_DIR)/kustomize

# docker-compose (v1, 1.28+ for profiles) or the Compose plugin, whichever answers.
ifeq ($(origin COMPOSE),undefined)
COMPOSE := $(shell if docker-compose version >/dev/null 2>&1; then echo docker-compose; else echo docker compose; fi)
endif
COMPOSE_PROJECT ?= apiops
COMPOSE_YML     ?= deploy/compose/docker-compose.yml
# Seconds compose-up waits for every service to answer its health endpoint.
COMPOSE_WAIT    ?= 120
# WITH_GRAFANA=1 also starts Grafana (its image is pulled from Docker Hub).
WITH_GRAFANA    ?=

# Prometheus: with the Debian package installed, a local image of its binary (no pull);
# otherwise the compose file's default, the upstream prom/prometheus image. PROMETHEUS_IMAGE
# set by the caller wins.
PROMETHEUS_BIN  ?= /usr/bin/prometheus
ifeq ($(origin PROMETHEUS_IMAGE),undefined)
ifneq ($(wildcard $(PROMETHEUS_BIN)),)
PROMETHEUS_IMAGE := $(IMAGE_REPO)/prometheus:$(IMAGE_TAG)
BUILD_PROMETHEUS := 1
endif
endif

COMPOSE_CMD = IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) PROMETHEUS_IMAGE=$(PROMETHEUS_IMAGE) \
	$(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_YML)
COMPOSE_PROFILES_UP = $(if $(filter 1 true yes,$(WITH_GRAFANA)),--profile grafana)

.PHONY: tools-kustomize test-deploy compose-config compose-prometheus-image compose-up compose-wait compose-smoke compose-down

## tools-kustomize: install kustomize $(KUSTOMIZE_VERSION) into $(GOBIN_DIR) if it is not there
tools-kustomize:
	@if ! $(KUSTOMIZE) version 2>/dev/null | grep -q '$(KUSTOMIZE_VERSION)'; then \
		echo "go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)"; \
		GOBIN=$(GOBIN_DIR) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); \
	fi

## test-deploy: the Kubernetes module's tests (kustomize build of base and overlay, strict decoding, JetStream JSON goldens), and the compose file's syntax
test-deploy: tools-kustomize
	cd deploy/kubernetes && KUSTOMIZE=$(KUSTOMIZE) $(GO) test -count=1 ./...
	@if $(COMPOSE) version >/dev/null 2>&1; then \
		echo "$(COMPOSE) config -q"; \
		$(COMPOSE_CMD) --profile grafana --profile tools config -q; \
	else echo "test-deploy: no docker-compose, compose file not checked"; fi

# The Prometheus image of deploy/compose/prometheus.Dockerfile: the Debian binary and the
# shared libraries ldd lists, under rootfs/ at their own paths.
compose-prometheus-image:
ifeq ($(BUILD_PROMETHEUS),1)
	rm -rf $(DIST)/prometheus
	mkdir -p $(DIST)/prometheus/rootfs/bin $(DIST)/prometheus/data
	cp -L $(PROMETHEUS_BIN) $(DIST)/prometheus/rootfs/bin/prometheus
	for lib in $$(ldd $(PROMETHEUS_BIN) | grep -o '/[^ ]*'); do \
		cp -L --parents $$lib $(DIST)/prometheus/rootfs/; \
	done
	$(DOCKER) build -q -t $(PROMETHEUS_IMAGE) -f deploy/compose/prometheus.Dockerfile $(DIST)/prometheus
else
	@echo "compose: Prometheus image $(or $(PROMETHEUS_IMAGE),from deploy/compose/docker-compose.yml) (not built here)"
endif

## compose-up: build the images, start NATS, two workers, the Apinizer simulator and Prometheus (Grafana too with WITH_GRAFANA=1), wait until they answer
compose-up: images compose-prometheus-image
	$(COMPOSE_CMD) $(COMPOSE_PROFILES_UP) up -d
	$(compose_wait)

# Waits for every service's health endpoint through its published port: nats /healthz, the
# workers' /readyz (connected, topology provisioned, consumer bound), the simulator's /healthz,
# Prometheus /-/ready. A recipe fragment, used by compose-up, compose-wait and compose-smoke.
define compose_wait
	@for check in nats:8222:/healthz worker-1:9090:/readyz worker-2:9090:/readyz \
			apinizer-sim:8080:/healthz prometheus:9090:/-/ready; do \
		svc=$${check%%:*}; rest=$${check#*:}; port=$${rest%%:*}; path=$${rest#*:}; \
		i=0; until addr=$$($(COMPOSE_CMD) port $$svc $$port 2>/dev/null) && [ -n "$$addr" ] && \
				curl -fsS -o /dev/null "http://$$addr$$path" 2>/dev/null; do \
			i=$$((i+1)); if [ $$i -ge $(COMPOSE_WAIT) ]; then \
				echo "compose: $$svc did not answer $$path within $(COMPOSE_WAIT)s" >&2; \
				$(COMPOSE_CMD) logs --tail=30 $$svc >&2; exit 1; fi; \
			sleep 1; \
		done; echo "compose: $$svc ready (http://$$addr$$path)"; \
	done
endef

## compose-wait: wait until every service of the running stack answers its health endpoint
compose-wait:
	$(compose_wait)

## compose-smoke: one job of each of the six kinds through the running stack with `enqueue --wait`; fails unless all six succeed
# The simulator is restarted first, so that its seed (MyProject: my-certificate, my-key,
# api-user with a public key) is whole again and the smoke test can be repeated.
compose-smoke:
	$(COMPOSE_CMD) restart apinizer-sim
	$(compose_wait)
	@set -u; failed=0; run() { \
		echo "enqueue $$*"; \
		$(COMPOSE_CMD) run --rm -T enqueue "$$@" --project MyProject --wait --timeout 60s || failed=$$((failed+1)); \
	}; \
	run certificate create --name smoke-certificate --pem /in/certificate.pem --alias smoke --description "compose smoke test" --env production,staging; \
	run certificate update --name my-certificate --pem /in/certificate.pem --alias rotated --description "compose smoke test" --env production,staging; \
	run certificate delete --name smoke-certificate; \
	run key delete --name my-key; \
	run credential publickey delete --name api-user; \
	run credential delete --name api-user; \
	if [ $$failed -gt 0 ]; then echo "compose-smoke: $$failed of 6 jobs did not succeed" >&2; exit 1; fi; \
	echo "compose-smoke: 6 of 6 jobs succeeded"

## compose-down: stop and remove the stack's containers, network and volumes (Grafana's too)
compose-down:
	$(COMPOSE_CMD) --profile grafana --profile tools down -v --remove-orphans
