package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/cputime"
	"github.com/apiops-worker/apiops-worker/internal/plainconsumer"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// BenchmarkBookkeeping splits the worker's cost per job, in-process and
// side by side: the same full stream of b.N key deletes (one key each, so
// no job waits on another's lock) is burned down, against a zero-latency
// simulator, by
//
//   - baseline: a plain consumer doing only the NATS work (result publish,
//     ack), as in `make bench`;
//   - ceiling: the same plus one plain HTTP DELETE to the simulator, the
//     least a worker calling Apinizer must do;
//   - ledger=off: the worker without its exactly-once bookkeeping;
//   - ledger=on: the worker as deployed.
//
// Each reports jobs/s, its throughput as a fraction of the baseline's
// (x-baseline), the client messages the server received per job, and the
// CPU time per job of the whole process (server, simulator and consumer
// together, cpu-µs/job): the differences between the rows say where a job's
// microseconds go.
//
//	go test -run '^$' -bench Bookkeeping -benchtime 20000x ./worker/
func BenchmarkBookkeeping(b *testing.B) {
	var baseline float64
	for _, name := range []string{"baseline", "ceiling", "ledger=off", "ledger=on"} {
		b.Run(name, func(b *testing.B) {
			stack := workertest.Start(b, streams.Config{})
			for i := range b.N {
				stack.Sim.AddKey(workertest.Project, keyName(i))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			publishKeyDeletes(ctx, b, stack.JS, b.N)
			results := watchResults(ctx, b, stack.JS, b.N)
			in0 := inMsgs(b, stack.Server)

			b.ResetTimer()
			cpu0 := cputime.Used()
			start := time.Now()
			switch name {
			case "baseline", "ceiling":
				runPlain(ctx, b, stack, name == "ceiling")
			default:
				stack.StartWorker(b, workertest.Worker{NoLedger: name == "ledger=off", Config: worker.Config{Concurrency: 64}})
			}
			select {
			case <-results:
			case <-ctx.Done():
				b.Fatalf("not every result of %d jobs arrived", b.N)
			}
			elapsed := time.Since(start)
			cpu := cputime.Used() - cpu0
			b.StopTimer()

			rate := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(rate, "jobs/s")
			b.ReportMetric(float64(inMsgs(b, stack.Server)-in0)/float64(b.N), "server-msgs/job")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/job")
			if name == "baseline" {
				baseline = rate
			} else if baseline > 0 {
				b.ReportMetric(rate/baseline, "x-baseline")
			}
		})
	}
}

// runPlain runs the plain consumer, with the ceiling's HTTP call or without,
// as many messages in flight as the worker at concurrency 64 holds, until
// the benchmark ends.
func runPlain(ctx context.Context, b *testing.B, stack *workertest.Stack, ceiling bool) {
	b.Helper()
	cons, err := stack.JS.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		b.Fatal(err)
	}
	const held = 128
	var call plainconsumer.Call
	if ceiling {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: held}}
		b.Cleanup(client.CloseIdleConnections)
		call = plainconsumer.DeleteKey(client, stack.Sim.URL, workertest.Project, workertest.Token, keyName)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- plainconsumer.Run(runCtx, stack.JS, cons, held, call, nil) }()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
}

func keyName(i int) string { return fmt.Sprintf("key-%d", i) }

// publishKeyDeletes fills the jobs stream with n key deletes on keys
// key-0 .. key-(n-1).
func publishKeyDeletes(ctx context.Context, b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	for i := range n {
		msg, err := jobs.NewMsg(&jobs.KeyDelete{JobID: fmt.Sprintf("bench-%d", i), ProjectName: workertest.Project, KeyName: keyName(i)})
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
