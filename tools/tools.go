//go:build tools

// Package tools records build dependencies that no package imports, so that `go mod tidy`
// keeps them in go.mod at the pinned version.
//
// nats-server is built from this module (`go build github.com/nats-io/nats-server/v2`) for
// the nats-server image and the integration suite, so its version is the one in go.mod.
package tools

import (
	_ "github.com/nats-io/nats-server/v2"
)
