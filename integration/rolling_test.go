package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// TestRollingRestartLosesNothing restarts the two workers one at a time (SIGTERM, wait for
// the exit, start again) while a producer publishes jobs at a steady rate. Every worker
// must exit 0 within its grace, every job must end with exactly one result, and no change
// may be applied twice: a graceful shutdown finishes or hands back its jobs, it never
// abandons a call half-way.
func TestRollingRestartLosesNothing(t *testing.T) {
	start := time.Now()
	const capacity = 600
	const rate = 20 // jobs a second
	wl := newWorkload(t, "rolling", "RollingProject", capacity)

	nw := startNetwork(t)
	node := startNATS(t, nw, "nats-1")
	sim := startSeededSim(t, nw, []seedProject{wl.seed}, "--latency", "200ms")
	workers := []testcontainers.Container{
		startWorker(t, nw, sim, workerSpec{Name: "worker-a", NATSURL: node.NetworkURL, Concurrency: 4}),
		startWorker(t, nw, sim, workerSpec{Name: "worker-b", NATSURL: node.NetworkURL, Concurrency: 4}),
	}

	js := jetStream(t, node.HostURL(t))
	results := watchResults(t, js)

	// The steady producer: one job every 1/rate seconds until told to stop or out of jobs.
	var (
		published atomic.Int64
		pubErr    error
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for _, job := range wl.jobs {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := jobs.Publish(ctx, js, job, jetstream.WithExpectStream("APIOPS_JOBS"))
			cancel()
			if err != nil {
				pubErr = fmt.Errorf("publish job %s: %w", job.ID(), err)
				return
			}
			published.Add(1)
		}
	})
	stopProducer := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	t.Cleanup(stopProducer)
	status := func() string {
		return fmt.Sprintf("%d jobs published, %d have a result", published.Load(), results.Jobs())
	}

	type restart struct {
		name      string
		exit      int
		stopTook  time.Duration
		startTook time.Duration
		holding   int // jobs it had claimed when it got SIGTERM
		at        time.Time
	}
	var restarts []restart
	for i, w := range workers {
		name := []string{"worker-a", "worker-b"}[i]
		before := results.Jobs()
		waitFor(t, time.Minute, "30 more results under load", func() bool { return results.Jobs() >= before+30 }, status)
		r := restart{name: name, holding: len(runningClaims(t, js, name)), at: time.Now()}
		r.exit, r.stopTook = stopWorker(t, w)
		if r.exit != 0 {
			t.Errorf("%s exited %d on SIGTERM, want 0 (stopping took %s of its %s grace)", name, r.exit, r.stopTook, workerStopGrace)
		}
		startAt := time.Now()
		startStopped(t, w) // waits for /readyz
		r.startTook = time.Since(startAt)
		restarts = append(restarts, r)
	}
	after := results.Jobs()
	waitFor(t, time.Minute, "30 more results after the rolling restart", func() bool { return results.Jobs() >= after+30 }, status)
	stopProducer()
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	n := int(published.Load())
	if n >= capacity {
		t.Fatalf("the producer ran out of its %d jobs before the restarts were done", capacity)
	}
	wl.jobs = wl.jobs[:n]
	waitFor(t, 2*time.Minute, "a result for every published job", func() bool { return results.Jobs() >= n }, status)

	sum := results.Summary()
	v := wl.check(t, sim, sum, nil) // no worker was interrupted: no repeat is excused
	line := fmt.Sprintf("jobs=%d results=%d duplicates=%d missing=%d not_succeeded=%d repeats=%d", n, v.results, v.duplicates, v.missing, v.notSucceeded, len(v.repeats))
	for _, r := range restarts {
		line += fmt.Sprintf(" %s_holding_at_sigterm=%d", r.name, r.holding)
		line += fmt.Sprintf(" %s_exit=%d %s_stop=%s %s_ready_again=%s max_stall_after_%s_stop=%s",
			r.name, r.exit, r.name, r.stopTook.Round(time.Millisecond), r.name, r.startTook.Round(time.Millisecond),
			r.name, maxGapAfter(sum.Arrivals, r.at).Round(time.Millisecond))
	}
	measure(t, "%s duration=%s", line, time.Since(start).Round(time.Millisecond))
}
