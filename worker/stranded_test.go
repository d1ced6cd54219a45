package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestStrandedJobIsListedAndFinishesOnceAfterRedrive strands a job as a full
// store does: it runs out of deliveries while its max-deliveries advisory is
// lost (here the advisories stream is gone), so no worker ever finishes it.
// dlq.FindStranded (enqueue dlq stranded) lists it, dlq.Redrive (--redrive)
// republishes it keeping its job id, and a worker then applies it once, with
// one result.
func TestStrandedJobIsListedAndFinishesOnceAfterRedrive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.js.DeleteStream(ctx, streams.Advisories); err != nil {
		t.Fatal(err)
	}
	stuck := b.keyDeletes(1, "stuck-%d", "stranded-")[0]
	fine := b.keyDeletes(1, "fine-%d", "not-stranded-")[0]
	b.publish(t, stuck)

	// Every delivery of the job is handed back, as by a worker that cannot
	// store anything, until the server gives up on it.
	cons, err := b.js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.topo.MaxDeliver {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
		if err := msg.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	// The server gives up on the job when the consumer next looks for a
	// message to deliver: one more pull, which gets nothing.
	poll.Until(t, 10*time.Second, "the server to give up on the job", func() bool {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for range batch.Messages() {
			t.Fatal("the job was delivered beyond its max deliveries")
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0
	})
	b.publish(t, fine) // not yet delivered: it must not be listed

	kv, err := b.js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	found, pending, err := dlq.FindStranded(ctx, b.js, kv)
	if err != nil || pending != 0 {
		t.Fatalf("FindStranded: %d jobs pending, %v; want none pending", pending, err)
	}
	if len(found) != 1 || found[0].JobID != stuck.ID() || found[0].Subject != jobs.SubjectKeyDelete {
		t.Fatalf("stranded jobs %+v, want only %s", found, stuck.ID())
	}
	if err := dlq.Redrive(ctx, b.js, found[0]); err != nil {
		t.Fatal(err)
	}

	b.startWorker(t, workerOpts{})
	requireEachSucceededOnce(t, b, []jobs.Job{stuck, fine}, true)
	if found, _, err := dlq.FindStranded(ctx, b.js, kv); err != nil || len(found) != 0 {
		t.Errorf("after the redrive: stranded %+v, %v; want none", found, err)
	}
}
