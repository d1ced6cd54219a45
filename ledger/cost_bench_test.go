package ledger_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/cputime"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// BenchmarkLedgerCost prices the ledger's parts on an embedded server, 64
// goroutines at once as the worker runs them: one bucket operation of each
// kind (a create, a compare-and-set update, a direct get), and a happy
// job's whole bookkeeping (Claim and Finish: two writes and a read). Each
// reports the process's CPU time per operation (server and client
// together, cpu-µs/op), which BenchmarkBookkeeping's rows in package worker
// (ledger=off against ledger=on) add up to.
//
//	go test -run '^$' -bench LedgerCost -benchtime 20000x ./ledger/
func BenchmarkLedgerCost(b *testing.B) {
	record := []byte(`{"holder":"bench-job-000000","owner":"bench-worker-1234-abcdef","token":"AAAAAAAAAAAAAAAA","leaseUntil":"2026-12-01T10:00:00Z","attempts":1,"deliveries":1,"startedAt":"2026-12-01T09:59:00Z","lastSeq":0}`)
	for _, op := range []string{"create", "update", "get", "claim+finish"} {
		b.Run(op, func(b *testing.B) {
			_, js := natstest.Connect(b, natstest.RunServer(b))
			ctx := context.Background()
			kv, err := js.CreateKeyValue(ctx, streams.Config{}.WithDefaults().LedgerConfig())
			if err != nil {
				b.Fatal(err)
			}
			led, err := ledger.New(kv, ledger.Config{Owner: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			key := func(i int64) string { return fmt.Sprintf("res.bench-%d", i) }
			if op == "update" || op == "get" {
				for i := range int64(b.N) {
					if _, err := kv.Create(ctx, key(i), record); err != nil {
						b.Fatal(err)
					}
				}
			}
			var next atomic.Int64
			b.SetParallelism(32) // GOMAXPROCS 2 × 32: the worker's 64 calls
			b.ResetTimer()
			cpu0 := cputime.Used()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					if err := costOp(ctx, kv, led, op, key(i), record, i); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((cputime.Used()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func costOp(ctx context.Context, kv jetstream.KeyValue, led *ledger.Ledger, op, key string, record []byte, i int64) error {
	switch op {
	case "create":
		_, err := kv.Create(ctx, key, record)
		return err
	case "update":
		_, err := kv.Update(ctx, key, record, uint64(i+1))
		return err
	case "get":
		_, err := kv.Get(ctx, key)
		return err
	}
	id := fmt.Sprintf("bench-job-%d", i)
	c, err := led.Claim(ctx, id, jobs.ResourceKey{Project: "P", Kind: jobs.KindKey, Name: id}, ledger.Delivery{N: 1})
	if err != nil {
		return err
	}
	return led.Finish(ctx, c, uint64(i+1), jobs.Encode(jobs.Result{JobID: id, Subject: "apiops.key.delete", Status: jobs.StatusSucceeded, Attempts: 1, StartedAt: time.Now(), FinishedAt: time.Now()}))
}
