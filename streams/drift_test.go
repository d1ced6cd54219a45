package streams_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/streams"
)

func TestDriftNamesEverySettingProvisionWouldResetAndNothingElse(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := streams.Config{}.WithDefaults()

	if d, err := streams.Drift(ctx, js, cfg); err != nil || len(d) != 0 {
		t.Fatalf("before provisioning: drift %v, %v; want none (missing objects are no drift)", d, err)
	}
	if err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if d, err := streams.Drift(ctx, js, cfg); err != nil || len(d) != 0 {
		t.Fatalf("just provisioned: drift %v, %v; want none", d, err)
	}

	// An operator tunes the results stream and the jobs consumer by hand.
	rs := cfg.ResultsStream()
	rs.MaxAge = 24 * time.Hour
	if _, err := js.UpdateStream(ctx, rs); err != nil {
		t.Fatal(err)
	}
	cc := cfg.ConsumerConfig()
	cc.MaxDeliver, cc.AckWait = 3, time.Minute
	if _, err := js.UpdateConsumer(ctx, streams.Jobs, cc); err != nil {
		t.Fatal(err)
	}
	d, err := streams.Drift(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(d, "\n")
	for _, want := range []string{
		"stream APIOPS_RESULTS: max age 24h0m0s, want 168h0m0s",
		"consumer APIOPS_JOBS/apiops-worker: max deliver 3, want 20",
		"consumer APIOPS_JOBS/apiops-worker: ack wait 1m0s, want 30s",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("drift:\n%s\nwant a line %q", got, want)
		}
	}
	if len(d) != 3 {
		t.Errorf("drift has %d lines, want 3:\n%s", len(d), got)
	}
	if err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if d, err := streams.Drift(ctx, js, cfg); err != nil || len(d) != 0 {
		t.Errorf("after provisioning again: drift %v, %v; want none", d, err)
	}
}
