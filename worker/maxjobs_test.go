package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

func TestMaxJobsDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ concurrency, want int }{
		{1, 2}, {16, 32}, {64, 128}, {256, 512}, {257, 513}, {1024, 1280}, {4096, 4352},
	} {
		t.Run(fmt.Sprintf("concurrency %d holds %d jobs", tc.concurrency, tc.want), func(t *testing.T) {
			t.Parallel()
			if got := (worker.Config{Concurrency: tc.concurrency}).WithDefaults().MaxJobs; got != tc.want {
				t.Errorf("MaxJobs = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestMaxJobsAboveMaxAckPendingIsCut checks that a worker told to hold more
// jobs than its consumer ever delivers at once says so, holds what the
// consumer allows, and finishes every job.
func TestMaxJobsAboveMaxAckPendingIsCut(t *testing.T) {
	t.Parallel()
	st := workertest.Start(t, streams.Config{AckWait: 3 * time.Second, MaxDeliver: 5, DuplicateWindow: time.Minute, MaxAckPending: 3})
	b := &bundle{js: st.JS, nc: st.NC, sim: st.Sim, topo: st.Topology, stack: st}
	const concurrency, n = 2, 8
	g := &gated{open: make(chan struct{})}
	logs := &capture.Buffer{}
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{concurrency: concurrency, maxJobs: 6,
		log:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		wrap: func(e worker.Executor) worker.Executor { g.Executor = e; return g }})
	b.publish(t, b.keyDeletes(n, "cut-%d", "job-")...)

	cons, err := b.js.Consumer(context.Background(), streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "3 jobs held, 2 of them in calls", func() bool {
		info, err := cons.Info(context.Background())
		inFlight, _ := g.counts()
		return err == nil && info.NumAckPending == 3 && inFlight == concurrency
	})
	if want := "holding at most 3 jobs, the consumer's max ack pending, not 6"; !strings.Contains(logs.String(), want) {
		t.Errorf("logs do not say %q:\n%s", want, logs.String())
	}
	close(g.open)
	for id, r := range rs.next(t, n, 20*time.Second) {
		if r.Status != jobs.StatusSucceeded {
			t.Errorf("%s: %s, want succeeded", id, r.Status)
		}
	}
}
