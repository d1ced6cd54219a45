package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestStrandedJobIsListedAndFinishesOnceAfterRedrive strands a job: it runs
// out of deliveries while its max-deliveries advisory is lost (JetStream's
// storage is full, or the advisories stream is gone), so no worker ever
// finishes it. Once storage is back, dlq.FindStranded (enqueue dlq stranded)
// lists it, dlq.Redrive (--redrive) republishes it keeping its job id, and a
// worker then applies it once, with one result.
func TestStrandedJobIsListedAndFinishesOnceAfterRedrive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		configure func(*server.Options)
		lose      func(*testing.T, *bundle) // loses the advisory to come
		restore   func(*testing.T, *bundle)
	}{
		{"while JetStream storage is full", func(o *server.Options) { o.JetStreamMaxStore = 4 << 20 }, fillStorage, purgeFiller},
		{"while the advisories stream is missing", nil, func(t *testing.T, b *bundle) {
			if err := b.js.DeleteStream(t.Context(), streams.Advisories); err != nil {
				t.Fatal(err)
			}
		}, func(*testing.T, *bundle) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var configure []func(*server.Options)
			if tc.configure != nil {
				configure = append(configure, tc.configure)
			}
			strandAndRedrive(t, setup(t, configure...), tc.lose, tc.restore)
		})
	}
}

func strandAndRedrive(t *testing.T, b *bundle, lose, restore func(*testing.T, *bundle)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stuck := b.keyDeletes(1, "stuck-%d", "stranded-")[0]
	fine := b.keyDeletes(1, "fine-%d", "not-stranded-")[0]
	b.publish(t, stuck)
	lose(t, b)

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
	restore(t, b)
	if s, err := b.js.Stream(ctx, streams.Advisories); err == nil {
		if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
			t.Fatalf("the advisories stream holds an advisory (%v): the test did not lose it", err)
		}
	}
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
