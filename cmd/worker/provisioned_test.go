package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/streams"
)

// awaitProvisioned waits up to 20s for the worker started by run to have
// provisioned the results stream and the jobs consumer it binds to, failing
// at once if run returns first: a test publishes only then.
func awaitProvisioned(t *testing.T, ctx context.Context, js jetstream.JetStream, done <-chan error, stderr *capture.Buffer) {
	t.Helper()
	poll.Until(t, 20*time.Second, "the worker to provision its streams and consumer", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned before provisioning: %v\nlog:\n%s", err, stderr.String())
		default:
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := js.Consumer(c, streams.Jobs, streams.Consumer); err != nil {
			return false
		}
		_, err := js.Stream(c, streams.Results)
		return err == nil
	})
}
