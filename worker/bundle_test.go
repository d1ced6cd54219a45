package worker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

const (
	project = workertest.Project
	token   = workertest.Token
)

// bundle is what a worker test works with: a real JetStream server, the
// Apinizer simulator and the means to start real workers on them.
type bundle struct {
	js    jetstream.JetStream
	nc    *nats.Conn
	sim   *apinizertest.Server
	pem   string
	topo  streams.Config
	stack *workertest.Stack
}

func setup(t *testing.T, configure ...func(*server.Options)) *bundle {
	t.Helper()
	st := workertest.Start(t, streams.Config{AckWait: 3 * time.Second, MaxDeliver: 5, DuplicateWindow: time.Minute}, configure...)
	return &bundle{js: st.JS, nc: st.NC, sim: st.Sim, pem: newPEM(t), topo: st.Topology, stack: st}
}

type workerOpts struct {
	concurrency int
	maxJobs     int
	retry       executor.RetryPolicy
	grace       time.Duration
	// wrap, if set, wraps the executor (to inject a panic).
	wrap func(worker.Executor) worker.Executor
}

// startWorker runs a real worker, with fast redeliveries and probes and its
// logs in the test's log, until the returned stop function is called or the
// test ends; stop returns Run's error.
func (b *bundle) startWorker(t *testing.T, o workerOpts) (stop func() error, reg *prometheus.Registry) {
	t.Helper()
	return b.stack.StartWorker(t, workertest.Worker{
		Config: worker.Config{
			Concurrency:     o.concurrency,
			MaxJobs:         o.maxJobs,
			ShutdownGrace:   o.grace,
			RedeliveryDelay: func(uint64) time.Duration { return 100 * time.Millisecond },
			Logger:          testLogger(t),
			ProbeInterval:   20 * time.Millisecond,
		},
		Retry: o.retry,
		Lease: 2 * b.topo.AckWait,
		Wrap:  o.wrap,
	})
}

// results collects results from the results stream.
type results struct {
	cons jetstream.Consumer
}

func (b *bundle) watchResults(t *testing.T) *results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := b.js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &results{cons: cons}
}

// next returns the next n results, failing the test if they do not arrive
// within timeout.
func (r *results) next(t *testing.T, n int, timeout time.Duration) map[string]jobs.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := make(map[string]jobs.Result, n)
	for i := 0; i < n; i++ {
		msg, err := r.cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("got %d of %d results: %v", len(got), n, err)
		}
		var res jobs.Result
		if err := json.Unmarshal(msg.Data(), &res); err != nil {
			t.Fatalf("result %s is not JSON: %v", msg.Data(), err)
		}
		if msg.Subject() != jobs.ResultSubject(res.Subject) {
			t.Errorf("result of %s published on %s", res.Subject, msg.Subject())
		}
		if want := jobs.ResultMsgID(res.JobID); msg.Headers().Get(nats.MsgIdHdr) != want {
			t.Errorf("result %s: Nats-Msg-Id %q, want %q", res.JobID, msg.Headers().Get(nats.MsgIdHdr), want)
		}
		if _, dup := got[res.JobID]; dup {
			t.Errorf("second result for job %s", res.JobID)
		}
		got[res.JobID] = res
	}
	return got
}

// streamMsgs reports how many messages a stream holds.
func (b *bundle) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func (b *bundle) publish(t *testing.T, js ...jobs.Job) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, j := range js {
		if _, err := jobs.Publish(ctx, b.js, j); err != nil {
			t.Fatalf("publish %s: %v", j.ID(), err)
		}
	}
}

func (b *bundle) certFields() jobs.CertificateFields {
	return jobs.CertificateFields{
		Alias:                  "alias",
		CertificateDescription: "description",
		EnvironmentList:        []string{"production", "staging"},
		PEMEncodedFile:         b.pem,
	}
}

// testLogger sends logs to the test's log, shown when it fails or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deadLetters(t *testing.T, b *bundle) []dlq.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := dlq.List(ctx, b.js, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// gauge reads an unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// counter sums every series of the counter name in reg, as a collector
// testutil can read.
func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	c.Add(sum)
	return c
}

func newPEM(t *testing.T) string {
	t.Helper()
	p, err := selfsigned.PEM("worker test " + strings.ReplaceAll(t.Name(), "/", " "))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
