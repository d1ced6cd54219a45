package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

func TestTransientFailuresEndSucceededWithEveryAttemptCounted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddKey(project, "flaky")
	b.sim.AddKey(project, "throttled")
	b.sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/keys/flaky/", Times: 3, Reply: apinizertest.HTMLReply(503)})
	b.sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/keys/throttled/", Times: 1,
		Reply: &apinizertest.Reply{Status: 429, RetryAfter: "1"}})
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})

	b.publish(t,
		&jobs.KeyDelete{JobID: "flaky", ProjectName: project, KeyName: "flaky"},
		&jobs.KeyDelete{JobID: "throttled", ProjectName: project, KeyName: "throttled"})
	got := rs.next(t, 2, 30*time.Second)
	for id, want := range map[string]int{"flaky": 4, "throttled": 2} {
		if r := got[id]; r.Status != jobs.StatusSucceeded || r.Attempts != want {
			t.Errorf("%s: %s after %d attempts, want succeeded after %d", id, r.Status, r.Attempts, want)
		}
	}
	// The Retry-After delay, read from what the simulator saw.
	var throttled []apinizertest.Request
	for _, r := range b.sim.Requests() {
		if strings.Contains(r.Path, "/throttled/") {
			throttled = append(throttled, r)
		}
	}
	if len(throttled) != 2 {
		t.Fatalf("simulator saw %d calls for the throttled key, want 2", len(throttled))
	}
	if gap := throttled[1].Start.Sub(throttled[0].End); gap < time.Second {
		t.Errorf("second call came %s after the 429, want at least its Retry-After of 1s", gap)
	}
}

func TestOutageLongerThanTheRetryBudgetLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 100
	all := b.keyDeletes(n, "k%d", "outage-")
	b.sim.Stop()
	rs := b.watchResults(t)
	b.publish(t, all...)
	budget := time.Second // the retry policy's MaxElapsedTime in startWorker
	_, reg := b.startWorker(t, workerOpts{concurrency: 8})

	poll.Until(t, 20*time.Second, "the breaker to open", func() bool { return gauge(t, reg, "apiops_circuit_breaker_state") >= 1 })
	// The outage lasts three retry budgets: long enough that a worker
	// without a breaker would spend deliveries on it.
	outage := time.NewTimer(3 * budget)
	<-outage.C
	if err := b.sim.Restart(); err != nil {
		t.Fatal(err)
	}
	got := rs.next(t, n, 60*time.Second)
	for id, r := range got {
		if r.Status != jobs.StatusSucceeded {
			t.Errorf("%s: %s (%+v), want succeeded", id, r.Status, r.Error)
		}
	}
	if d := b.streamMsgs(t, streams.DeadLetters); d != 0 {
		t.Errorf("%d jobs dead-lettered, want none", d)
	}
	if s := gauge(t, reg, "apiops_circuit_breaker_state"); s != 0 {
		t.Errorf("breaker state %v after the outage, want 0 (closed)", s)
	}
}

func TestRefusedJobIsDeadLetteredAfterOneCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rs := b.watchResults(t)
	_, reg := b.startWorker(t, workerOpts{})

	b.publish(t, &jobs.KeyDelete{JobID: "missing", ProjectName: project, KeyName: "no-such-key"})
	r := rs.next(t, 1, 20*time.Second)["missing"]
	if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "not_found" || r.Error.ApinizerError != "bad_request" || r.Error.HTTPStatus != 400 {
		t.Fatalf("result %s %+v, want failed with the stable code not_found beside Apinizer's bad_request", r.Status, r.Error)
	}
	if calls := len(b.sim.Requests()); calls != 1 {
		t.Errorf("simulator received %d calls, want exactly 1", calls)
	}
	recs := deadLetters(t, b)
	if len(recs) != 1 {
		t.Fatalf("%d dead letters, want 1", len(recs))
	}
	if d := recs[0]; d.JobID != "missing" || d.Reason != dlq.ReasonPermanent || d.Attempts != 1 || d.Subject != jobs.SubjectKeyDelete || !strings.Contains(d.Payload, "no-such-key") {
		t.Errorf("dead letter %+v, want the job with reason %s after 1 attempt", d, dlq.ReasonPermanent)
	}
	if v := testutil.ToFloat64(counter(t, reg, "apiops_dead_letters_total")); v != 1 {
		t.Errorf("apiops_dead_letters_total = %v, want 1", v)
	}
}

func TestReplayOfAFixedDeadLetterSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})

	b.publish(t, &jobs.KeyDelete{JobID: "fix-me", ProjectName: project, KeyName: "later"})
	if r := rs.next(t, 1, 20*time.Second)["fix-me"]; r.Status != jobs.StatusFailed {
		t.Fatalf("first run: %s, want failed", r.Status)
	}
	recs := deadLetters(t, b)
	if len(recs) != 1 {
		t.Fatalf("%d dead letters, want 1", len(recs))
	}
	b.sim.AddKey(project, "later") // the operator fixes Apinizer's state
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	newID, err := dlq.Replay(ctx, b.js, recs[0])
	if err != nil {
		t.Fatal(err)
	}
	r := rs.next(t, 1, 20*time.Second)[newID]
	if r.Status != jobs.StatusSucceeded || r.ReplayOf != "fix-me" {
		t.Errorf("replay %s: %s, replayOf %q; want succeeded, replayOf \"fix-me\"", newID, r.Status, r.ReplayOf)
	}
	if left := deadLetters(t, b); len(left) != 0 {
		t.Errorf("%d dead letters left after the replay, want 0", len(left))
	}
}

func TestPoisonInputIsDeadLetteredAndTheWorkerGoesOn(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *server.Options) { o.MaxPayload = 4 << 20 })
	b.sim.AddKey(project, "after-poison")
	b.startWorker(t, workerOpts{})

	ctx := context.Background()
	big := `{"projectName":"P","keyName":"k","pad":"` + strings.Repeat("x", 2<<20) + `"}`
	for subject, body := range map[string]string{
		jobs.SubjectKeyDelete:        big,
		jobs.SubjectCredentialDelete: "\xff\xfe not JSON",
		"apiops.key.rotate":          `{"projectName":"P"}`,
	} {
		if _, err := b.js.Publish(ctx, subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	b.publish(t, &jobs.KeyDelete{JobID: "after-poison", ProjectName: project, KeyName: "after-poison"})
	// The poison names no job id: each gets a result keyed by its stream
	// sequence, jobId null (TestHostileMessagesWithoutAUsableJobID...).
	poll.Until(t, 20*time.Second, "four results", func() bool { return b.streamMsgs(t, streams.Results) == 4 })
	got, count := allResults(t, b)
	if r := got["after-poison"]; r.Status != jobs.StatusSucceeded {
		t.Errorf("the job after the poison: %s, want succeeded", r.Status)
	}
	if count[""] != 3 {
		t.Errorf("%d results without a job id, want 3 (one per poison message)", count[""])
	}
	poll.Until(t, 10*time.Second, "three dead letters", func() bool { return b.streamMsgs(t, streams.DeadLetters) == 3 })
	for _, d := range deadLetters(t, b) {
		if d.Reason != dlq.ReasonInvalid {
			t.Errorf("%s: reason %s, want %s", d.Subject, d.Reason, dlq.ReasonInvalid)
		}
		if d.PayloadSize > dlq.MaxPayload && (!d.Truncated || len(d.Payload) > dlq.MaxPayload) {
			t.Errorf("%s: %d-byte payload stored as %d bytes, want it capped at %d", d.Subject, d.PayloadSize, len(d.Payload), dlq.MaxPayload)
		}
	}
	if calls := len(b.sim.Requests()); calls != 1 {
		t.Errorf("simulator received %d calls, want only the good job's", calls)
	}
}

// panicky panics while applying one job.
type panicky struct {
	worker.Executor
	jobID string
}

func (p panicky) Execute(ctx context.Context, job jobs.Job, call executor.Call) (executor.Response, error) {
	if job.ID() == p.jobID {
		panic("boom")
	}
	return p.Executor.Execute(ctx, job, call)
}

func TestPanicFailsOnlyItsJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddKey(project, "fine")
	b.sim.AddKey(project, "cursed")
	rs := b.watchResults(t)
	_, reg := b.startWorker(t, workerOpts{wrap: func(e worker.Executor) worker.Executor { return panicky{e, "cursed"} }})

	b.publish(t,
		&jobs.KeyDelete{JobID: "cursed", ProjectName: project, KeyName: "cursed"},
		&jobs.KeyDelete{JobID: "fine", ProjectName: project, KeyName: "fine"})
	got := rs.next(t, 2, 20*time.Second)
	if r := got["cursed"]; r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "worker_panic" {
		t.Errorf("cursed: %s %+v, want failed with worker_panic", r.Status, r.Error)
	}
	if r := got["fine"]; r.Status != jobs.StatusSucceeded {
		t.Errorf("fine: %s, want succeeded", r.Status)
	}
	if v := testutil.ToFloat64(counter(t, reg, "apiops_handler_panics_total")); v != 1 {
		t.Errorf("apiops_handler_panics_total = %v, want 1", v)
	}
	if recs := deadLetters(t, b); len(recs) != 1 || recs[0].Reason != dlq.ReasonPanic {
		t.Errorf("dead letters %+v, want the cursed job with reason %s", recs, dlq.ReasonPanic)
	}
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
