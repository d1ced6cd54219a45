package stranded_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/stranded"
	"github.com/apiops-worker/apiops-worker/streams"
)

// gauge is a Gauge a test can read.
type gauge struct{ n atomic.Int64 }

func (g *gauge) StrandedJobs(n int) { g.n.Store(int64(n)) }

// TestStrandedJobsAreCountedByOneReplica strands one job (its two
// deliveries claimed it, neither finished it, and its advisory never came)
// beside one that still has deliveries left: the lease holder counts the
// stranded one only, and the other replica reports 0.
func TestStrandedJobsAreCountedByOneReplica(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := streams.Config{AckWait: time.Second, MaxDeliver: 2, DuplicateWindow: time.Minute}.WithDefaults()
	if err := streams.Provision(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Claims that lapsed long ago, by workers that are gone: the first
	// delivery's an hour ago, the second's half an hour ago.
	claimedAgo := func(ago time.Duration) *ledger.Ledger {
		led, err := ledger.New(kv, ledger.Config{Owner: "dead-worker", Lease: time.Second, Now: func() time.Time { return time.Now().Add(-ago) }})
		if err != nil {
			t.Fatal(err)
		}
		return led
	}
	ledgers := map[uint64]*ledger.Ledger{1: claimedAgo(time.Hour), 2: claimedAgo(30 * time.Minute)}
	byID := map[string]jobs.Job{}
	for _, j := range []jobs.Job{
		&jobs.KeyDelete{JobID: "stranded-1", ProjectName: "P", KeyName: "k1"},
		&jobs.KeyDelete{JobID: "waiting-1", ProjectName: "P", KeyName: "k2"},
	} {
		byID[j.ID()] = j
		if _, err := jobs.Publish(ctx, js, j); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	// Both are delivered once; only stranded-1 is delivered (and claimed)
	// a second, last time.
	deliver := func(want string, delivery uint64) {
		t.Helper()
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			id := msg.Headers().Get("Nats-Msg-Id")
			if want == "" || id == want {
				if _, err := ledgers[delivery].Claim(ctx, id, byID[id].Resource(), ledger.Delivery{N: delivery}); err != nil {
					t.Fatal(err)
				}
			}
			if want == "" && id == "stranded-1" {
				if err := msg.NakWithDelay(0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	deliver("", 1)
	deliver("stranded-1", 2)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var gauges [2]gauge
	for i := range gauges {
		w, err := stranded.NewWatch(stranded.Config{Interval: time.Second, Lease: time.Second, Holder: []string{"a", "b"}[i]}, js, kv, &gauges[i], log)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(runCtx) }()
		t.Cleanup(func() {
			stop()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("the watch did not stop within 10s")
			}
		})
	}
	// Waiting for a sum of 1 would leave nothing to check afterwards (two
	// non-negative counts summing to 1 cannot both be non-zero): wait for
	// a replica to count the job, then check that the other did not.
	poll.Until(t, 20*time.Second, "a replica to count the stranded job", func() bool {
		return gauges[0].n.Load() == 1 || gauges[1].n.Load() == 1
	})
	if a, b := gauges[0].n.Load(), gauges[1].n.Load(); a+b != 1 {
		t.Errorf("both replicas report stranded jobs (%d, %d), want only the lease holder", a, b)
	}
}
