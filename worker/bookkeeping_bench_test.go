package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// offJobsPerSec is the ledger=off throughput, which ledger=on reports its
// own against.
var offJobsPerSec float64

// BenchmarkBookkeeping measures what the exactly-once bookkeeping (the
// ledger's key-value round trips per job) costs: the same worker burns down
// a full stream of b.N key deletes against a zero-latency simulator, with the
// ledger off, then on. Each job is on a resource of its own, so no job waits
// on another's lock. Besides jobs/s it reports the client messages the
// server received per job (requests, publishes, acks) and, for ledger=on,
// its throughput as a fraction of ledger=off's.
//
//	go test -run '^$' -bench Bookkeeping -benchmem ./worker/
func BenchmarkBookkeeping(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "ledger=off"
		if on {
			name = "ledger=on"
		}
		b.Run(name, func(b *testing.B) {
			stack := workertest.Start(b, streams.Config{})
			for i := range b.N {
				stack.Sim.AddKey(workertest.Project, fmt.Sprintf("key-%d", i))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			publishKeyDeletes(ctx, b, stack.JS, b.N)
			results := watchResults(ctx, b, stack.JS, b.N)
			in0 := inMsgs(b, stack.Server)

			b.ResetTimer()
			start := time.Now()
			stack.StartWorker(b, workertest.Worker{NoLedger: !on, Config: worker.Config{Concurrency: 64}})
			select {
			case <-results:
			case <-ctx.Done():
				b.Fatalf("not every result of %d jobs arrived", b.N)
			}
			elapsed := time.Since(start)
			b.StopTimer()

			rate := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(rate, "jobs/s")
			b.ReportMetric(float64(inMsgs(b, stack.Server)-in0)/float64(b.N), "server-msgs/job")
			if !on {
				offJobsPerSec = rate
			} else if offJobsPerSec > 0 {
				b.ReportMetric(rate/offJobsPerSec, "x-ledger-off")
			}
		})
	}
}

// publishKeyDeletes fills the jobs stream with n key deletes on keys
// key-0 .. key-(n-1).
func publishKeyDeletes(ctx context.Context, b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	for i := range n {
		msg, err := jobs.NewMsg(&jobs.KeyDelete{JobID: fmt.Sprintf("bench-%d", i), ProjectName: workertest.Project, KeyName: fmt.Sprintf("key-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("jobs not acknowledged")
	}
}

// watchResults returns a channel closed once n results are on the results
// stream.
func watchResults(ctx context.Context, b *testing.B, js jetstream.JetStream, n int) <-chan struct{} {
	b.Helper()
	cons, err := js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	got := 0
	cc, err := cons.Consume(func(jetstream.Msg) {
		if got++; got == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	return done
}

// inMsgs is the number of client messages the server has received.
func inMsgs(b *testing.B, s *server.Server) int64 {
	b.Helper()
	v, err := s.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	return v.InMsgs
}
