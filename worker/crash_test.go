package worker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// childEnv makes the test binary run a worker process instead of the tests:
// the crash test kills it with SIGKILL, a real process death.
const childEnv = "APIOPS_WORKER_TEST_CHILD"

// runChild is the worker process of TestWorkerSurvivesSIGKILL.
func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child worker:", err)
		return 1
	}
	ackWait, err := time.ParseDuration(os.Getenv("ACK_WAIT"))
	if err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	cons, err := js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		return fail(err)
	}
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		return fail(err)
	}
	led, err := ledger.New(kv, ledger.Config{Owner: fmt.Sprintf("child-%d", os.Getpid()), Lease: 2 * ackWait})
	if err != nil {
		return fail(err)
	}
	exec, err := executor.New(executor.Config{BaseURL: os.Getenv("APINIZER_URL"), Token: func() (string, error) { return token, nil }})
	if err != nil {
		return fail(err)
	}
	w, err := worker.New(worker.Config{Concurrency: 8, Ledger: led, Metrics: metrics.New(prometheus.NewRegistry())}, js, cons, exec)
	if err != nil {
		return fail(err)
	}
	if err := w.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

func TestWorkerSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 20
	var all []jobs.Job
	for i := range n {
		key, cert := fmt.Sprintf("key-%d", i), fmt.Sprintf("cert-%d", i)
		b.sim.AddKey(project, key)
		b.sim.AddCertificate(project, cert, b.pem)
		all = append(all,
			&jobs.KeyDelete{JobID: "kill-" + key, ProjectName: project, KeyName: key},
			&jobs.CertificateUpdate{JobID: "kill-" + cert, ProjectName: project, CertificateName: cert, CertificateFields: b.certFields()})
	}
	// Apinizer applies each change, then is slow to answer: the process dies
	// with changes made and no answer seen.
	b.sim.AddFault(apinizertest.Fault{HoldAnswer: time.Minute})
	rs := b.watchResults(t)

	child := b.startChild(t)
	b.publish(t, all...)

	const inFlight = 8 // the child's concurrency
	poll.Until(t, 30*time.Second, "the child to have calls in flight", func() bool { return len(b.sim.Requests()) >= inFlight })
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	b.sim.ClearFaults()
	b.startWorker(t, workerOpts{concurrency: 8})

	got := rs.next(t, n*2, 60*time.Second)
	repeated := 0
	for id, r := range got {
		if r.Status != jobs.StatusSucceeded {
			t.Errorf("%s ended %s (%+v), want succeeded: the crash must not fail a job", id, r.Status, r.Error)
		}
		if r.Attempts > 1 {
			repeated++
		}
	}
	if repeated == 0 {
		t.Error("no job needed a second attempt: the crash did not interrupt any call")
	}
	for i := range n {
		if b.sim.KeyExists(project, fmt.Sprintf("key-%d", i)) {
			t.Errorf("key-%d was not deleted", i)
		}
	}
	t.Logf("%d jobs, %d finished after the killed worker's attempt", len(got), repeated)
}

func TestJobThatKillsEveryWorkerEndsInTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const normal = 10
	all := b.keyDeletes(normal, "ok-%d", "")
	b.sim.AddKey(project, "deadly")
	// Every call for the deadly key hangs: the test kills the worker holding it.
	b.sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/keys/deadly/", Hang: true})
	rs := b.watchResults(t)
	b.publish(t, append([]jobs.Job{&jobs.KeyDelete{JobID: "deadly", ProjectName: project, KeyName: "deadly"}}, all...)...)

	deadlyCalls := func() int {
		n := 0
		for _, r := range b.sim.Requests() {
			if strings.Contains(r.Path, "/deadly/") {
				n++
			}
		}
		return n
	}
	// The first worker finishes the other jobs before it is killed, so that
	// only the deadly job dies with every worker.
	child := b.startChild(t)
	got := rs.next(t, normal, 30*time.Second)
	kills := 0
	for seen := 0; ; {
		poll.Until(t, 30*time.Second, "the deadly call or its dead letter", func() bool {
			return deadlyCalls() > seen || b.streamMsgs(t, streams.DeadLetters) > 0
		})
		seen = deadlyCalls()
		_ = child.Process.Signal(syscall.SIGKILL)
		_ = child.Wait()
		kills++
		if b.streamMsgs(t, streams.DeadLetters) > 0 || kills >= 2*b.topo.MaxDeliver {
			break
		}
		child = b.startChild(t)
	}
	b.startWorker(t, workerOpts{concurrency: 4})
	for id, r := range rs.next(t, 1, 60*time.Second) {
		got[id] = r
	}
	for id, r := range got {
		want := jobs.StatusSucceeded
		if id == "deadly" {
			want = jobs.StatusFailed
		}
		if r.Status != want {
			t.Errorf("%s: %s (%+v), want %s", id, r.Status, r.Error, want)
		}
	}
	recs := deadLetters(t, b)
	if len(recs) != 1 || recs[0].JobID != "deadly" || recs[0].Reason != dlq.ReasonMaxDeliveries {
		t.Errorf("dead letters %+v, want only the deadly job, for %s", recs, dlq.ReasonMaxDeliveries)
	}
	t.Logf("%d worker processes killed; the deadly job was called %d times", kills, deadlyCalls())
}

// startChild starts a worker process (see runChild), killed at the latest
// when the test ends.
func (b *bundle) startChild(t *testing.T) *exec.Cmd {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"=1", "NATS_URL="+b.nc.ConnectedUrl(), "APINIZER_URL="+b.sim.URL,
		fmt.Sprintf("ACK_WAIT=%s", b.topo.AckWait))
	child.Stdout, child.Stderr = testWriter{t}, testWriter{t}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	return child
}
