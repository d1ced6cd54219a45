package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// maxLedgerWritesPerJob bounds the ledger writes of a job on the happy path:
// the claim in the resource's record, and the final job record that also
// frees the resource (docs/ledger.md). It was 4, then 3.
const maxLedgerWritesPerJob = 2

// TestLedgerWritesPerJobOnTheHappyPath counts the key-value writes the
// worker sends for jobs that each succeed at their first attempt: every
// write is a message on the bucket's subjects, which a plain subscription
// sees whether or not the bucket stores it, and the stored ones raise the
// bucket stream's last sequence.
func TestLedgerWritesPerJobOnTheHappyPath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 50
	all := b.keyDeletes(n, "writes-%d", "job-")

	var mu sync.Mutex
	sent := map[string]int{} // by record kind: "job", "res"
	prefix := "$KV." + streams.LedgerBucket + "."
	sub, err := b.nc.Subscribe(prefix+">", func(m *nats.Msg) {
		kind, _, _ := strings.Cut(strings.TrimPrefix(m.Subject, prefix), ".")
		mu.Lock()
		sent[kind]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	before := b.ledgerLastSeq(t)

	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{concurrency: 8})
	b.publish(t, all...)
	for id, r := range rs.next(t, n, 30*time.Second) {
		if r.Status != jobs.StatusSucceeded || r.Attempts != 1 {
			t.Fatalf("%s: status %s after %d attempts, want succeeded after 1: not the happy path", id, r.Status, r.Attempts)
		}
	}
	poll.Until(t, 10*time.Second, "every job to be acknowledged", func() bool { return b.streamMsgs(t, streams.Jobs) == 0 })
	// The subscription may still be reading the last writes: a flush is a
	// round trip behind them.
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	stored := b.ledgerLastSeq(t) - before
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, c := range sent {
		total += c
	}
	// Only job. and res. keys are the ledger's: the stranded-jobs check
	// keeps its lease in the same bucket.
	perJob := float64(sent["job"]+sent["res"]) / n
	t.Logf("ledger writes for %d jobs: %d sent (%v), %d stored: %.2f a job", n, total, sent, stored, perJob)
	if uint64(total) != stored {
		t.Errorf("%d writes sent but %d stored: the happy path should have no failed compare-and-set", total, stored)
	}
	if perJob > maxLedgerWritesPerJob {
		t.Errorf("%.2f ledger writes a job, want at most %d", perJob, maxLedgerWritesPerJob)
	}
}

// ledgerLastSeq reads the last sequence of the ledger bucket's stream: it
// grows by one for every write stored.
func (b *bundle) ledgerLastSeq(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, "KV_"+streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}
