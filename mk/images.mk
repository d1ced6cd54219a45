# Container images and the integration suite. Included by the main Makefile, after mk/vars.mk.
#
# Every image is FROM scratch: the binaries are built here, statically (CGO_ENABLED=0), and
# copied into a per-image build context under $(DIST)/<name>/ together with the CA bundle and
# a minimal /etc/passwd and /etc/group (user apiops, uid 65532). The Dockerfiles in
# deploy/docker/ are the production ones; the integration harness builds the same contexts.
# See deploy/docker/README.md.

CA_BUNDLE       ?= /etc/ssl/certs/ca-certificates.crt
INTEGRATION_LOG ?= $(DIST)/integration.log
# Bounds the whole integration run; each test bounds its own steps more tightly.
INTEGRATION_TIMEOUT ?= 15m

IMAGES := nats-server worker enqueue apinizer-sim

# The Go package each image's binary is built from. nats-server comes from the version pinned
# in go.mod (kept there by tools/tools.go), so the server under test is the one we ship.
image_pkg_nats-server  := github.com/nats-io/nats-server/v2
image_pkg_worker       := ./cmd/worker
image_pkg_enqueue      := ./cmd/enqueue
image_pkg_apinizer-sim := ./cmd/apinizer-sim

STATIC_BUILD_FLAGS := -trimpath -ldflags='-s -w'

.PHONY: images test-integration $(addprefix image-,$(IMAGES)) $(addprefix image-context-,$(IMAGES))

## images: build apiops/<name>:$(IMAGE_TAG) for every binary
images: $(addprefix image-,$(IMAGES))

# Static pattern rules rather than plain image-%: make never applies implicit rules to .PHONY
# targets, and these must always rerun (go build and docker build do their own caching).
$(addprefix image-,$(IMAGES)): image-%: image-context-%
	$(DOCKER) build -t $(IMAGE_REPO)/$*:$(IMAGE_TAG) -f deploy/docker/$*.Dockerfile $(DIST)/$*

# The context holds exactly what the Dockerfile copies. data/ is the empty directory that
# becomes nats-server's /data volume (COPY --chown gives it to uid 65532, as scratch has no
# shell to chown with); it is created for every image to keep this rule uniform.
$(addprefix image-context-,$(IMAGES)): image-context-%:
	rm -rf $(DIST)/$*
	mkdir -p $(DIST)/$*/etc/ssl/certs $(DIST)/$*/data
	CGO_ENABLED=0 $(GO) build $(STATIC_BUILD_FLAGS) -o $(DIST)/$*/$* $(image_pkg_$*)
	cp deploy/docker/rootfs/etc/passwd deploy/docker/rootfs/etc/group $(DIST)/$*/etc/
	cp $(CA_BUNDLE) $(DIST)/$*/etc/ssl/certs/ca-certificates.crt

## test-integration: run ./integration against Docker; output also goes to $(INTEGRATION_LOG)
# The harness builds its own binaries and images (once per run), so this depends on nothing.
# .ci/run reads the log to fail the build when a test was skipped. bash for pipefail: the
# exit status must be go test's, not tee's (make's /bin/sh may be dash, which lacks it).
test-integration:
	mkdir -p $(dir $(INTEGRATION_LOG))
	bash -o pipefail -c '$(GO) test -v -count=1 -timeout $(INTEGRATION_TIMEOUT) ./integration/... 2>&1 | tee $(INTEGRATION_LOG)'
