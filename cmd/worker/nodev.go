//go:build !dev

package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// errNoDev is --dev's answer in the production build, which carries neither
// the embedded NATS server nor the Apinizer simulator (dev.go).
var errNoDev = errors.New("--dev: this binary was built without the development stack (embedded NATS server, Apinizer simulator); use make run, or go run -tags dev ./cmd/worker --dev")

type devEnv struct{ cfg config }

func startDev(config, *slog.Logger) (*devEnv, error) { return nil, errNoDev }

func (*devEnv) close() {}

func (*devEnv) publishSamples(context.Context, jetstream.JetStream, io.Writer, *slog.Logger) {}

func (*devEnv) banner(io.Writer, string) {}
