# apiops-worker. `make help` lists the targets.

include mk/vars.mk

FUZZTIME  ?= 60s
BIN       ?= bin
# Unit tests are every package but the container suite, which test-integration runs.
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v /integration)
# staticcheck, pinned, built through the Go module proxy on first use (go run caches the binary).
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: help build run test test-unit fuzz bench lint clean

## help: list the targets
help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## build: build the worker, enqueue and apinizer-sim binaries into bin/
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## run: the worker with an embedded NATS JetStream server and the Apinizer simulator; publishes one sample job of each kind, prints the results, serves until Ctrl-C
run:
	$(GO) run -tags dev ./cmd/worker --dev --samples --metrics-addr 127.0.0.1:9090

## test: unit tests with the race detector, the Prometheus rule tests, the deployment files' tests, then the integration suite (containers)
test: test-unit test-rules test-deploy
	$(MAKE) test-integration

## test-unit: unit tests only, with the race detector
test-unit:
	$(GO) test -race -count=1 -timeout 10m -tags dev $(UNIT_PKGS)

## fuzz: run each fuzz target for $(FUZZTIME)
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./jobs/
	$(GO) test -run='^$$' -fuzz='^FuzzParseResponse$$' -fuzztime=$(FUZZTIME) ./executor/

## bench: the end-to-end benchmark program (worker against raw JetStream), then the Go benchmarks
bench: bench-program bench-go

## lint: go.mod and go.sum tidy, gofmt, go vet and staticcheck (also on the dev-tagged development stack), in this module and in deploy/kubernetes (its own go.mod)
lint:
	$(GO) mod tidy -diff
	cd deploy/kubernetes && $(GO) mod tidy -diff
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags dev ./cmd/worker
	cd deploy/kubernetes && $(GO) vet ./...
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags dev ./cmd/worker
	cd deploy/kubernetes && $(STATICCHECK) ./...

## clean: remove build outputs
clean:
	rm -rf $(BIN) $(DIST)

include mk/images.mk
include mk/deploy.mk
include mk/observability.mk
include mk/bench.mk
