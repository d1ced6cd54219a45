package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/worker"
)

// TestFailedJobWritesOneWarnLine checks that a failed job, whatever failed
// it, writes one line at info or above: a warn naming the job, its subject,
// attempt, code and message; the rest is at debug.
func TestFailedJobWritesOneWarnLine(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddKey(project, "refused")
	b.sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/keys/refused/",
		Reply: apinizertest.ErrorReply(400, "bad_request", "Apinizer refuses this key")})
	logs := &capture.Buffer{}
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})

	b.publish(t, &jobs.KeyDelete{JobID: "fail-refused", ProjectName: project, KeyName: "refused"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := nats.NewMsg(jobs.SubjectKeyDelete)
	msg.Header.Set(nats.MsgIdHdr, "fail-invalid")
	msg.Data = []byte(`{"jobId":"fail-invalid","projectName":"` + project + `"}`)
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	got := rs.next(t, 2, 20*time.Second)

	for _, c := range []struct{ id, code string }{{"fail-refused", "bad_request"}, {"fail-invalid", "missing_field"}} {
		t.Run("job "+c.id+" logs one warn line with its code and message", func(t *testing.T) {
			r := got[c.id]
			if r.Status != jobs.StatusFailed || r.Error == nil {
				t.Fatalf("result %s, error %+v; want failed", r.Status, r.Error)
			}
			var warns []map[string]any
			sc := bufio.NewScanner(strings.NewReader(logs.String()))
			for sc.Scan() {
				var line map[string]any
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
				}
				if line["job_id"] == c.id {
					warns = append(warns, line)
				}
			}
			if len(warns) != 1 {
				t.Fatalf("%d lines at info or above about the job, want 1:\n%v", len(warns), warns)
			}
			w := warns[0]
			if w["level"] != "WARN" || w["msg"] != "job failed" {
				t.Errorf("line %v, want WARN \"job failed\"", w)
			}
			for key, want := range map[string]any{"subject": jobs.SubjectKeyDelete, "code": r.Error.Code, "message": r.Error.Message} {
				if w[key] != want {
					t.Errorf("%s = %v, want %v", key, w[key], want)
				}
			}
			if r.Error.Code != c.code {
				t.Errorf("code %s, want %s", r.Error.Code, c.code)
			}
			if _, ok := w["attempt"]; !ok {
				t.Errorf("line %v carries no attempt", w)
			}
		})
	}
}

// TestShutdownSaysAtOnceWhatItWaitsFor stops a worker with one job in
// flight and a pull that waits far longer: the line saying how many jobs
// it finishes, and within what grace, comes at once, before the job ends.
func TestShutdownSaysAtOnceWhatItWaitsFor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := b.keyDeletes(1, "draining-%d", "drain-")
	g := &gated{open: make(chan struct{})}
	logs := &capture.Buffer{}
	stop, _ := b.startWorker(t, workerOpts{grace: 20 * time.Second, fetchWait: 10 * time.Second,
		log:  slog.New(slog.NewTextHandler(logs, nil)),
		wrap: func(e worker.Executor) worker.Executor { g.Executor = e; return g }})
	b.publish(t, all...)
	poll.Until(t, 10*time.Second, "the job's call in flight", func() bool { n, _ := g.counts(); return n == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	const want = "stopping: finishing 1 jobs in flight, grace 20s"
	poll.Until(t, 2*time.Second, "the shutdown line "+want, func() bool { return strings.Contains(logs.String(), want) })
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) before the job in flight finished", err)
	default:
	}
	close(g.open)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of the job's end")
	}
}
