# The variables the main Makefile and every mk/*.mk file share, defined once here. The main
# Makefile includes this file before anything else; the other mk files define only their own.

GO         ?= go
DOCKER     ?= docker
# Build outputs other than bin/: the images' build contexts, the Prometheus image's, the
# integration log.
DIST       ?= dist
# Every image is $(IMAGE_REPO)/<name>:$(IMAGE_TAG), the names deploy/compose and
# deploy/kubernetes use.
IMAGE_REPO ?= apiops
IMAGE_TAG  ?= dev
