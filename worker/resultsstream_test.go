package worker_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// TestResultsStreamDeletedMidRunIsRecreatedAndEveryJobGetsOneResult deletes
// the results stream while every job's Apinizer call is in flight: with
// provisioning on, the worker re-creates it at once, and each job gets
// exactly one result in it, with one Apinizer call each and no delivery
// spent. With provisioning off, the worker reports the missing stream and
// the jobs wait until an operator creates it.
func TestResultsStreamDeletedMidRunIsRecreatedAndEveryJobGetsOneResult(t *testing.T) {
	t.Parallel()
	for _, provision := range []bool{true, false} {
		name := "re-created at once when provisioning is on"
		if !provision {
			name = "reported, and the jobs wait for it, when provisioning is off"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			all := b.keyDeletes(6, "rs-%d", "results-stream-")
			g := &gated{open: make(chan struct{})}
			var w atomic.Pointer[worker.Worker]
			_, reg := b.startWorker(t, workerOpts{concurrency: len(all), noProvision: !provision,
				wrap:    func(e worker.Executor) worker.Executor { g.Executor = e; return g },
				started: func(wk *worker.Worker) { w.Store(wk) }})
			b.publish(t, all...)
			poll.Until(t, 10*time.Second, "every job's call in flight", func() bool { n, _ := g.counts(); return n == len(all) })

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.js.DeleteStream(ctx, streams.Results); err != nil {
				t.Fatal(err)
			}
			close(g.open)

			if !provision {
				poll.Until(t, 10*time.Second, "Ready to name the missing results stream", func() bool {
					err := w.Load().Ready()
					return err != nil && strings.Contains(err.Error(), streams.Results)
				})
				if v := jsUnavailable(t, reg, streams.Results); v != 1 {
					t.Errorf("apiops_jetstream_unavailable{object=%q} = %v, want 1", streams.Results, v)
				}
				lasting(2 * b.topo.AckWait)
				if _, err := b.js.Stream(ctx, streams.Results); err == nil {
					t.Fatal("the worker re-created the results stream with provisioning off")
				}
				if _, err := b.js.CreateStream(ctx, b.topo.ResultsStream()); err != nil {
					t.Fatal(err)
				}
			}
			poll.Until(t, 30*time.Second, "a result for every job in the re-created stream", func() bool {
				s, err := b.js.Stream(ctx, streams.Results)
				if err != nil {
					return false
				}
				info, err := s.Info(ctx)
				return err == nil && info.State.Msgs >= uint64(len(all))
			})
			requireEachSucceededOnce(t, b, all, true)
			poll.Until(t, 5*time.Second, "Ready again", func() bool { return w.Load().Ready() == nil })
		})
	}
}
