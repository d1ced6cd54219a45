// Package workertest runs the whole service in-process for tests that need
// it as a black box (the enqueue CLI, dashboards, benchmarks): a real
// embedded NATS JetStream server with the topology provisioned, the Apinizer
// simulator, and real workers.
package workertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// Project is the simulator's project, with environments production and
// staging.
const Project = "MyProject"

// Token is the Apinizer token of the simulator.
const Token = "workertest-token"

// Stack is a running service.
type Stack struct {
	Server   *server.Server
	NC       *nats.Conn
	JS       jetstream.JetStream
	Sim      *apinizertest.Server
	Topology streams.Config
}

// Start runs a NATS server with the topology and the simulator; configure,
// if given, adjusts the server options.
func Start(tb testing.TB, topo streams.Config, configure ...func(*server.Options)) *Stack {
	tb.Helper()
	srv := natstest.RunServer(tb, configure...)
	nc, js := natstest.Connect(tb, srv)
	topo = topo.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Provision(ctx, js, topo); err != nil {
		tb.Fatal(err)
	}
	sim := apinizertest.NewServer(apinizertest.Config{Token: Token})
	tb.Cleanup(sim.Close)
	sim.AddProject(Project, "production", "staging")
	return &Stack{Server: srv, NC: nc, JS: js, Sim: sim, Topology: topo}
}

// Worker configures one worker of StartWorker.
type Worker struct {
	// Config is passed to worker.New after the stack's settings (fetch
	// wait, logger, metrics, ledger) are filled in where zero.
	Config worker.Config
	// Retry is the executor's retry policy. Default: fast, 1s budget.
	Retry executor.RetryPolicy
	// Registry receives the worker's metrics. Default: a new one.
	Registry *prometheus.Registry
	// NoLedger turns bookkeeping off.
	NoLedger bool
	// NoProvision leaves a JetStream object deleted under the worker
	// missing (reported, not re-created), as WORKER_NO_PROVISION does.
	NoProvision bool
	// Lease is the ledger lease. Default: the ack wait.
	Lease time.Duration
	// Wrap, if set, wraps the executor (to inject a fault into it).
	Wrap func(worker.Executor) worker.Executor
	// Started, if set, is given the worker before it runs (to ask it
	// Ready).
	Started func(*worker.Worker)
	// Executor, if set, adjusts the executor's configuration (another
	// simulator, a token file, client credentials) before it is built.
	Executor func(*executor.Config)
}

// StartWorker runs a worker until stop is called or the test ends; stop
// returns Run's error. reg holds the worker's metrics.
func (s *Stack) StartWorker(tb testing.TB, o Worker) (stop func() error, reg *prometheus.Registry) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := s.JS.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		tb.Fatal(err)
	}
	if o.Retry == (executor.RetryPolicy{}) {
		o.Retry = executor.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: time.Second, Multiplier: 2}
	}
	ecfg := executor.Config{BaseURL: s.Sim.URL, Token: func() (string, error) { return Token, nil }, Retry: o.Retry,
		Concurrency: max(o.Config.Concurrency, executor.DefaultConcurrency)}
	if o.Executor != nil {
		o.Executor(&ecfg)
	}
	exec, err := executor.New(ecfg)
	if err != nil {
		tb.Fatal(err)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	cfg := o.Config
	if cfg.FetchWait == 0 {
		cfg.FetchWait = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(o.Registry)
	}
	if cfg.Topology == nil && !o.NoProvision {
		cfg.Topology = &s.Topology
	}
	if o.Lease == 0 {
		o.Lease = s.Topology.AckWait
	}
	if cfg.Ledger == nil && !o.NoLedger {
		kv, err := s.JS.KeyValue(ctx, streams.LedgerBucket)
		if err != nil {
			tb.Fatal(err)
		}
		if cfg.Ledger, err = ledger.New(kv, ledger.Config{Owner: tb.Name() + "-" + time.Now().Format(time.RFC3339Nano), Lease: o.Lease}); err != nil {
			tb.Fatal(err)
		}
	}
	var ex worker.Executor = exec
	if o.Wrap != nil {
		ex = o.Wrap(exec)
	}
	w, err := worker.New(cfg, s.JS, cons, ex)
	if err != nil {
		tb.Fatal(err)
	}
	if o.Started != nil {
		o.Started(w)
	}
	return Run(tb, w), o.Registry
}

// Run runs w until stop is called or the test ends; stop returns Run's
// error, and a worker that does not stop within 30s fails the test.
func Run(tb testing.TB, w *worker.Worker) (stop func() error) {
	runCtx, cancelRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	var (
		once   sync.Once
		runErr error
	)
	stop = func() error {
		once.Do(func() {
			cancelRun()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("workertest: worker did not stop within 30s")
			}
		})
		return runErr
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("worker: %v", err)
		}
	})
	return stop
}
