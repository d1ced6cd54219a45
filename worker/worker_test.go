package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m,
		// The embedded server and the HTTP client keep pools of their own.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

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
	fetchWait   time.Duration
	// wrap, if set, wraps the executor (to inject a panic).
	wrap func(worker.Executor) worker.Executor
	// executor, if set, adjusts the executor's configuration.
	executor func(*executor.Config)
	// started, if set, is given the worker before it runs.
	started func(*worker.Worker)
	// noProvision leaves deleted JetStream objects missing.
	noProvision bool
	// log, if set, replaces the test's log.
	log *slog.Logger
}

// startWorker runs a real worker, with fast redeliveries and probes and its
// logs in the test's log, until the returned stop function is called or the
// test ends; stop returns Run's error.
func (b *bundle) startWorker(t *testing.T, o workerOpts) (stop func() error, reg *prometheus.Registry) {
	t.Helper()
	log := o.log
	if log == nil {
		log = testLogger(t)
	}
	return b.stack.StartWorker(t, workertest.Worker{
		Config: worker.Config{
			Concurrency:     o.concurrency,
			MaxJobs:         o.maxJobs,
			ShutdownGrace:   o.grace,
			FetchWait:       o.fetchWait,
			RedeliveryDelay: func(uint64) time.Duration { return 100 * time.Millisecond },
			Logger:          log,
			ProbeInterval:   20 * time.Millisecond,
		},
		Retry:       o.retry,
		Lease:       2 * b.topo.AckWait,
		Wrap:        o.wrap,
		Executor:    o.executor,
		Started:     o.started,
		NoProvision: o.noProvision,
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

// keyDeletes adds n keys to the simulator, named by the format name with
// their index, and returns a job deleting each, its id idPrefix and the name.
func (b *bundle) keyDeletes(n int, name, idPrefix string) []jobs.Job {
	all := make([]jobs.Job, 0, n)
	for i := range n {
		key := fmt.Sprintf(name, i)
		b.sim.AddKey(project, key)
		all = append(all, &jobs.KeyDelete{JobID: idPrefix + key, ProjectName: project, KeyName: key})
	}
	return all
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

func TestWorkerAppliesOneJobOfEachKindWithOneResultEach(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddCertificate(project, "updated", b.pem)
	b.sim.AddCertificate(project, "deleted", b.pem)
	b.sim.AddKey(project, "key")
	b.sim.AddCredential(project, "user", true)
	b.sim.AddCredential(project, "gone-user", true)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{concurrency: 4})

	all := []jobs.Job{
		&jobs.CertificateUpdate{JobID: "j-update", ProjectName: project, CertificateName: "updated", CertificateFields: b.certFields()},
		&jobs.CertificateCreate{JobID: "j-create", ProjectName: project, CertificateName: "created", CertificateFields: b.certFields()},
		&jobs.CertificateDelete{JobID: "j-cert-delete", ProjectName: project, CertificateName: "deleted"},
		&jobs.KeyDelete{JobID: "j-key-delete", ProjectName: project, KeyName: "key", JWKDeleteAction: jobs.JWKDeleteDelete},
		&jobs.CredentialDelete{JobID: "j-cred-delete", ProjectName: project, Username: "gone-user"},
		&jobs.CredentialPublicKeyDelete{JobID: "j-pubkey-delete", ProjectName: project, Username: "user"},
	}
	b.publish(t, all...)
	got := rs.next(t, len(all), 30*time.Second)

	for _, j := range all {
		r, ok := got[j.ID()]
		if !ok {
			t.Errorf("no result for %s", j.ID())
			continue
		}
		want := jobs.Result{
			JobID: j.ID(), Subject: j.Subject(), ProjectName: project, ResourceName: j.Resource().Name,
			Status: jobs.StatusSucceeded, Attempts: 1,
		}
		if diff := cmp.Diff(want, r, cmpopts.IgnoreFields(jobs.Result{}, "StartedAt", "FinishedAt", "DeploymentResult")); diff != "" {
			t.Errorf("result of %s (-want +got):\n%s", j.ID(), diff)
		}
		if r.DeploymentResult == nil || !r.DeploymentResult.Success || len(r.DeploymentResult.EnvironmentResults) != 2 {
			t.Errorf("result of %s: deployment %+v, want success in production and staging", j.ID(), r.DeploymentResult)
		}
		if r.FinishedAt.Before(r.StartedAt) {
			t.Errorf("result of %s finished %s before it started %s", j.ID(), r.FinishedAt, r.StartedAt)
		}
	}
	if n := len(b.sim.Requests()); n != len(all) {
		t.Errorf("simulator received %d requests, want %d (one per job)", n, len(all))
	}
	if n := b.streamMsgs(t, streams.Results); n != uint64(len(all)) {
		t.Errorf("results stream holds %d results, want %d", n, len(all))
	}
	if _, ok := b.sim.Certificate(project, "created"); !ok {
		t.Error("certificate \"created\" was not created")
	}
	if b.sim.KeyExists(project, "key") {
		t.Error("key was not deleted")
	}
}

func TestWorkerReportsPartialDeployment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddKey(project, "key")
	b.sim.FailEnvironment(project, "staging", true)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})

	b.publish(t, &jobs.KeyDelete{JobID: "partial", ProjectName: project, KeyName: "key"})
	r := rs.next(t, 1, 20*time.Second)["partial"]
	if r.Status != jobs.StatusPartial {
		t.Fatalf("status %q, want partial", r.Status)
	}
	var failed []string
	for _, e := range r.DeploymentResult.EnvironmentResults {
		if !e.Success {
			failed = append(failed, e.EnvironmentName)
		}
	}
	if diff := cmp.Diff([]string{"staging"}, failed); diff != "" {
		t.Errorf("failed environments (-want +got):\n%s", diff)
	}
}
