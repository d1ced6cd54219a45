package worker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// gated holds every Apinizer call until open is closed, counting the calls
// in flight.
type gated struct {
	worker.Executor
	open     chan struct{}
	mu       sync.Mutex
	inFlight int
	max      int
}

func (g *gated) Execute(ctx context.Context, job jobs.Job, call executor.Call) (executor.Response, error) {
	g.mu.Lock()
	g.inFlight++
	g.max = max(g.max, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	select {
	case <-g.open:
	case <-ctx.Done():
		return executor.Response{}, ctx.Err()
	}
	return g.Executor.Execute(ctx, job, call)
}

func (g *gated) counts() (inFlight, max int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, g.max
}

func TestInvalidJobsFailWithoutCallingApinizer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})

	privateKeyPEM := b.pem + "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
	cases := []struct {
		name, subject, body, code string
	}{
		{"malformed JSON", jobs.SubjectKeyDelete, `{"projectName":`, "malformed_job"},
		{"missing key name", jobs.SubjectKeyDelete, `{"projectName":"P"}`, "missing_field"},
		{"path traversal in a name", jobs.SubjectCertificateDelete, `{"projectName":"P","certificateName":"../x"}`, "invalid_field"},
		{"encoded slash in a name", jobs.SubjectCredentialDelete, `{"projectName":"P","username":"a%2Fb"}`, "invalid_field"},
		{"unknown enum value", jobs.SubjectKeyDelete, `{"projectName":"P","keyName":"k","jwkDeleteAction":"PURGE"}`, "invalid_field"},
		{"private key instead of a certificate", jobs.SubjectCertificateCreate, mustJSON(t, map[string]any{
			"projectName": "P", "certificateName": "c", "alias": "a", "certificateDescription": "d",
			"environmentList": []string{"production"}, "pemEncodedFile": privateKeyPEM,
		}), "invalid_field"},
		{"unknown subject", "apiops.certificate.rename", `{"projectName":"P"}`, "unknown_subject"},
	}
	for i, c := range cases {
		msg := nats.NewMsg(c.subject)
		msg.Data = []byte(c.body)
		msg.Header.Set(nats.MsgIdHdr, "invalid-"+string(rune('a'+i)))
		if _, err := b.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	got := rs.next(t, len(cases), 20*time.Second)
	for i, c := range cases {
		t.Run(c.name+" fails with "+c.code, func(t *testing.T) {
			r, ok := got["invalid-"+string(rune('a'+i))]
			if !ok {
				t.Fatal("no result")
			}
			if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != c.code || r.Error.Retryable {
				t.Errorf("result %+v error %+v, want failed with code %s, not retryable", r, r.Error, c.code)
			}
		})
	}
	if n := len(b.sim.Requests()); n != 0 {
		t.Errorf("simulator received %d requests, want none", n)
	}
}

func TestShutdownLetsTheCallInFlightFinishAndAck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddKey(project, "slow-key")
	b.sim.SetLatency(time.Second)
	rs := b.watchResults(t)
	stop, _ := b.startWorker(t, workerOpts{grace: 20 * time.Second})

	b.publish(t, &jobs.KeyDelete{JobID: "in-flight", ProjectName: project, KeyName: "slow-key"})
	// MaxInFlight has an entry once a request for the resource has begun.
	poll.Until(t, 10*time.Second, "the simulator to receive the call", func() bool { return len(b.sim.MaxInFlight()) > 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r := rs.next(t, 1, 5*time.Second)["in-flight"]
	if r.Status != jobs.StatusSucceeded {
		t.Errorf("status %q, want succeeded", r.Status)
	}
	// The ack is sent before Run returns but, like every ack, not waited
	// for: the server removes the message a moment later.
	poll.Until(t, 5*time.Second, "the jobs stream to be empty (the job acknowledged)", func() bool {
		return b.streamMsgs(t, streams.Jobs) == 0
	})
}

// TestShutdownGraceIsHonouredWithinHalfASecond stops a worker whose job
// never finishes while its pull for more jobs waits far longer than the
// grace: Run returns within the grace and half a second, and the job goes
// back to the stream for another worker.
func TestShutdownGraceIsHonouredWithinHalfASecond(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := b.keyDeletes(1, "stuck-%d", "grace-")
	g := &gated{open: make(chan struct{})}
	const grace = time.Second
	stop, _ := b.startWorker(t, workerOpts{grace: grace, fetchWait: 10 * time.Second,
		wrap: func(e worker.Executor) worker.Executor { g.Executor = e; return g }})
	b.publish(t, all...)
	poll.Until(t, 10*time.Second, "the job's call in flight", func() bool { n, _ := g.counts(); return n == 1 })

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > grace+500*time.Millisecond {
		t.Errorf("Run returned %s after it was told to stop, want within the %s grace and 0.5s", took, grace)
	}
	if n := b.streamMsgs(t, streams.Jobs); n != 1 {
		t.Errorf("jobs stream holds %d jobs, want the unfinished one handed back", n)
	}
}

func TestTraceContextReachesApinizerAndTheResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddKey(project, "traced")
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	msg, err := jobs.NewMsg(&jobs.KeyDelete{JobID: "traced", ProjectName: project, KeyName: "traced"})
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set("traceparent", traceparent)
	if _, err := b.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := rs.cons.Next(jetstream.FetchContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Headers().Get("traceparent"); got != traceparent {
		t.Errorf("result traceparent %q, want %q", got, traceparent)
	}
	reqs := b.sim.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Apinizer received %d requests, want 1", len(reqs))
	}
	if got := reqs[0].Header.Get("traceparent"); got != traceparent {
		t.Errorf("Apinizer request traceparent %q, want %q", got, traceparent)
	}
}

func TestConcurrencyBoundsCallsWhileTwiceAsManyJobsAreHeld(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const concurrency, n = 2, 8
	g := &gated{open: make(chan struct{})}
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{concurrency: concurrency, wrap: func(e worker.Executor) worker.Executor { g.Executor = e; return g }})

	var all []jobs.Job
	for i := range n {
		name := fmt.Sprintf("key-%d", i)
		b.sim.AddKey(project, name)
		all = append(all, &jobs.KeyDelete{JobID: name, ProjectName: project, KeyName: name})
	}
	b.publish(t, all...)

	// While the calls are held, the worker holds MaxJobs jobs: the ones
	// waiting for a call slot have been claimed and locked already.
	cons, err := b.js.Consumer(context.Background(), streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	held := worker.Config{Concurrency: concurrency}.WithDefaults().MaxJobs
	poll.Until(t, 10*time.Second, fmt.Sprintf("%d calls in flight and %d jobs held", concurrency, held), func() bool {
		info, err := cons.Info(context.Background())
		inFlight, _ := g.counts()
		return err == nil && info.NumAckPending == held && inFlight == concurrency
	})
	close(g.open)
	got := rs.next(t, n, 20*time.Second)
	for id, r := range got {
		if r.Status != jobs.StatusSucceeded {
			t.Errorf("%s: %s, want succeeded", id, r.Status)
		}
	}
	if _, most := g.counts(); most != concurrency {
		t.Errorf("at most %d calls were in flight at once, want %d (the concurrency)", most, concurrency)
	}
}
