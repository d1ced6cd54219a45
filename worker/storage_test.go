package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// filler is a stream that takes what JetStream storage the jobs left free.
const filler = "FILLER"

// fillStorage publishes to the filler stream until the server answers
// insufficient resources, with large messages and then small ones, so that
// not even a small message (an advisory) fits.
func fillStorage(t *testing.T, b *bundle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: filler, Subjects: []string{"filler"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{32 << 10, 64} {
		pad := []byte(strings.Repeat("x", size))
		for i := 0; ; i++ {
			_, err := b.js.Publish(ctx, "filler", pad)
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == 10023 {
				break // insufficient resources
			}
			if err != nil || i > 100000 {
				t.Fatalf("filling storage: %d messages of %d bytes, then %v", i, size, err)
			}
		}
	}
}

// purgeFiller frees what fillStorage took.
func purgeFiller(t *testing.T, b *bundle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs, err := b.js.Stream(ctx, filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Purge(ctx); err != nil {
		t.Fatal(err)
	}
}

// jsUnavailable reads apiops_jetstream_unavailable for object.
func jsUnavailable(t *testing.T, reg *prometheus.Registry, object string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "apiops_jetstream_unavailable" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == object {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no apiops_jetstream_unavailable{object=%q}", object)
	return 0
}

// lasting lets an outage last d: the test asserts what does not happen
// meanwhile, so this is the outage's length, not a synchronisation.
func lasting(d time.Duration) { <-time.After(d) }

// consumerInfo reads the jobs consumer's state.
func consumerInfo(t *testing.T, b *bundle) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := b.js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// allResults reads every result the results stream holds, counting each
// job's.
func allResults(t *testing.T, b *bundle) (map[string]jobs.Result, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := b.js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got, count := map[string]jobs.Result{}, map[string]int{}
	for range b.streamMsgs(t, streams.Results) {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		var r jobs.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			t.Fatal(err)
		}
		got[r.JobID] = r
		count[r.JobID]++
	}
	return got, count
}

// requireEachSucceededOnce waits for a result of every job and an empty
// jobs stream, then checks that each job succeeded exactly once, that no
// delivery was spent and, when oneCall is set, that each took one Apinizer
// call and no more.
func requireEachSucceededOnce(t *testing.T, b *bundle, all []jobs.Job, oneCall bool) {
	t.Helper()
	poll.Until(t, 30*time.Second, "a result for every job", func() bool { return b.streamMsgs(t, streams.Results) >= uint64(len(all)) })
	poll.Until(t, 10*time.Second, "the jobs stream to be empty: nothing stranded", func() bool { return b.streamMsgs(t, streams.Jobs) == 0 })
	got, count := allResults(t, b)
	for _, j := range all {
		if r := got[j.ID()]; count[j.ID()] != 1 || r.Status != jobs.StatusSucceeded || (oneCall && r.Attempts != 1) {
			t.Errorf("%s: %d results, %s after %d attempts (%+v); want one, succeeded", j.ID(), count[j.ID()], r.Status, r.Attempts, r.Error)
		}
	}
	if n := len(b.sim.Requests()); oneCall && n != len(all) {
		t.Errorf("Apinizer received %d requests, want %d (one per job, no extra call)", n, len(all))
	}
	if info := consumerInfo(t, b); info.NumRedelivered != 0 {
		t.Errorf("%d jobs redelivered, want 0 (no delivery spent)", info.NumRedelivered)
	}
}

// TestStorageFullSpendsNoDeliveryAndEveryJobSucceedsOnceAfter fills
// JetStream's storage (a small max_file_store) behind queued jobs, then runs
// a worker: while storage is full no job spends a delivery or reaches
// Apinizer, Ready reports the ledger as the object JetStream cannot store,
// and the metric says so; once the filler is purged, every job succeeds
// exactly once and none is left in the jobs stream.
func TestStorageFullSpendsNoDeliveryAndEveryJobSucceedsOnceAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *server.Options) { o.JetStreamMaxStore = 4 << 20 })
	all := b.keyDeletes(8, "full-%d", "storage-")
	b.publish(t, all...)
	fillStorage(t, b)

	var w atomic.Pointer[worker.Worker]
	_, reg := b.startWorker(t, workerOpts{concurrency: 4, started: func(wk *worker.Worker) { w.Store(wk) }})
	poll.Until(t, 20*time.Second, "Ready to report that JetStream cannot store the ledger", func() bool {
		err := w.Load().Ready()
		return err != nil && strings.Contains(err.Error(), "JetStream cannot store") && strings.Contains(err.Error(), streams.LedgerBucket)
	})
	if v := jsUnavailable(t, reg, streams.LedgerBucket); v != 1 {
		t.Errorf("apiops_jetstream_unavailable{object=%q} = %v, want 1", streams.LedgerBucket, v)
	}

	// Two ack waits and more: long enough for any spent delivery to show.
	lasting(3 * b.topo.AckWait)
	info := consumerInfo(t, b)
	if info.NumRedelivered != 0 {
		t.Errorf("%d jobs redelivered while storage was full, want 0 (no delivery spent)", info.NumRedelivered)
	}
	if info.NumAckPending == 0 {
		t.Error("no job held while storage was full: the test did not run the jobs into the outage")
	}
	if n := len(b.sim.Requests()); n != 0 {
		t.Errorf("Apinizer received %d requests while storage was full, want 0", n)
	}
	if err := w.Load().Ready(); err == nil {
		t.Error("Ready() = nil while storage is full")
	}

	purgeFiller(t, b)
	requireEachSucceededOnce(t, b, all, true)
	poll.Until(t, 5*time.Second, "Ready once storage is back", func() bool { return w.Load().Ready() == nil })
	if v := jsUnavailable(t, reg, streams.LedgerBucket); v != 0 {
		t.Errorf("apiops_jetstream_unavailable{object=%q} = %v after recovery, want 0", streams.LedgerBucket, v)
	}
}
