package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// clock is a settable clock shared by the ledgers of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// setup returns two ledgers (two workers) on one bucket of a real server.
func setup(t *testing.T) (a, b *ledger.Ledger, clk *clock) {
	t.Helper()
	a, b, clk, _ = setupBucket(t)
	return a, b, clk
}

// setupBucket is setup that also returns the bucket, for what reads it as a
// producer does (ledger.ReadJob).
func setupBucket(t *testing.T) (a, b *ledger.Ledger, clk *clock, kv jetstream.KeyValue) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, streams.Config{}.WithDefaults().LedgerConfig())
	if err != nil {
		t.Fatal(err)
	}
	clk = &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	mk := func(owner string) *ledger.Ledger {
		l, err := ledger.New(kv, ledger.Config{Owner: owner, Lease: time.Minute, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	return mk("worker-a"), mk("worker-b"), clk, kv
}

var (
	resK = jobs.ResourceKey{Project: "P", Kind: jobs.KindKey, Name: "k"}
	resC = jobs.ResourceKey{Project: "P", Kind: jobs.KindCertificate, Name: "c"}
)

func succeeded(id string) jobs.Encoded {
	return jobs.Encode(jobs.Result{JobID: id, Status: jobs.StatusSucceeded})
}

// claim claims the job or fails the test.
func claim(t *testing.T, l *ledger.Ledger, id string, res jobs.ResourceKey, delivery uint64) *ledger.Claim {
	t.Helper()
	c, err := l.Claim(context.Background(), id, res, ledger.Delivery{N: delivery})
	if err != nil {
		t.Fatalf("claim %s: %v", id, err)
	}
	if c.Final != nil {
		t.Fatalf("claim %s: found final (%s), want a claim", id, c.Final.Result.Status)
	}
	return c
}

// busyOn fails the test unless err is a *BusyError naming job.
func busyOn(t *testing.T, err error, job, what string) {
	t.Helper()
	var busy *ledger.BusyError
	if !errors.As(err, &busy) || busy.Job != job {
		t.Errorf("%s: %v, want busy, held by job %s", what, err, job)
	}
}

func TestAJobIsClaimedByOneWorkerUntilItsLeaseLapses(t *testing.T) {
	t.Parallel()
	a, b, clk := setup(t)
	ctx := context.Background()

	c := claim(t, a, "job-1", resK, 1)
	if c.Prior != 0 || c.Record.Attempts != 1 {
		t.Errorf("fresh claim: prior %d, attempts %d; want 0 and 1 (the claim counts its first attempt)", c.Prior, c.Record.Attempts)
	}
	var busy *ledger.BusyError
	if _, err := b.Claim(ctx, "job-1", resK, ledger.Delivery{N: 1}); !errors.As(err, &busy) || busy.Holder != "worker-a" || busy.Job != "job-1" {
		t.Fatalf("second worker's claim: %v, want busy, held by worker-a", err)
	}
	if _, err := a.Claim(ctx, "job-1", resK, ledger.Delivery{Seq: 2, N: 1}); !errors.Is(err, ledger.ErrBusy) {
		t.Fatalf("the same worker claiming again for another message of the job: %v, want busy: one process must not run a job twice", err)
	}
	// The first attempt is counted by the claim; the second is written.
	if err := a.Attempt(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Attempt(ctx, c, 2); err != nil {
		t.Fatal(err)
	}

	clk.advance(2 * time.Minute) // worker-a died: its lease lapses
	taken := claim(t, b, "job-1", resK, 2)
	if taken.Prior != 2 || taken.Record.Attempts != 3 || taken.Record.Owner != "worker-b" || taken.Record.Deliveries != 2 {
		t.Errorf("taken over: prior %d, attempts %d, owner %s, deliveries %d; want 2, 3, worker-b, 2", taken.Prior, taken.Record.Attempts, taken.Record.Owner, taken.Record.Deliveries)
	}
	if err := a.Renew(ctx, c); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("the old holder renewing: %v, want ErrLost", err)
	}
	if err := b.Finish(ctx, taken, 0, succeeded("job-1")); err != nil {
		t.Fatal(err)
	}
	final, err := a.Claim(ctx, "job-1", resK, ledger.Delivery{N: 3})
	if err != nil || final.Final == nil || final.Final.Result.Status != jobs.StatusSucceeded {
		t.Errorf("claim of a final job: %+v, %v; want the stored result", final, err)
	}
	if err := a.Finish(ctx, c, 0, succeeded("job-1")); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("the old holder finishing: %v, want ErrLost", err)
	}
}

// A job may wait long for its first attempt (for a call slot, across a
// network partition). Once half its lease has gone by, the attempt checks
// with a write that the claim is still held.
func TestAFirstAttemptAfterALongWaitChecksTheClaim(t *testing.T) {
	t.Parallel()
	a, b, clk := setup(t)
	ctx := context.Background()
	c := claim(t, a, "job-wait", resK, 1)

	// Still held after 40s of a 1m lease: the check renews the lease.
	clk.advance(40 * time.Second)
	if err := a.Attempt(ctx, c, 1); err != nil {
		t.Fatalf("attempt 1 after 40s: %v", err)
	}
	clk.advance(40 * time.Second) // 80s after the claim, 40s after the renewal
	if _, err := b.Claim(ctx, "job-wait", resK, ledger.Delivery{N: 2}); !errors.Is(err, ledger.ErrBusy) {
		t.Fatalf("another worker 40s after the renewal: %v, want busy", err)
	}

	// Taken over while the first worker was cut off: its attempt must not go out.
	clk.advance(2 * time.Minute)
	claim(t, b, "job-wait", resK, 2)
	if err := a.Attempt(ctx, c, 1); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("first attempt after the takeover: %v, want ErrLost", err)
	}
}

func TestAReleasedJobIsTakenAtOnce(t *testing.T) {
	t.Parallel()
	a, b, _, kv := setupBucket(t)
	ctx := context.Background()
	c := claim(t, a, "job-2", resK, 1)
	c.Sent(1)
	if err := a.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	again := claim(t, b, "job-2", resK, 2)
	if again.Prior != 1 || again.Record.Deliveries != 2 {
		t.Errorf("claim after release: prior %d, deliveries %d; want 1 and 2", again.Prior, again.Record.Deliveries)
	}
	again.Sent(2)
	if err := b.Release(ctx, again); err != nil {
		t.Fatal(err)
	}

	// Another job takes the resource at once too, writing the released
	// claim out to its job, whose next claim still counts its attempts.
	other := claim(t, a, "other", resK, 1)
	rec, err := ledger.ReadClaim(ctx, kv, "job-2", resK)
	if err != nil || rec.State != ledger.StateRunning || rec.Attempts != 3 || rec.Deliveries != 2 || !rec.LeaseUntil.IsZero() {
		t.Fatalf("the released job after another took its resource: %+v, %v; want running, 3 attempts, 2 deliveries, no lease", rec, err)
	}
	if err := a.Finish(ctx, other, 0, succeeded("other")); err != nil {
		t.Fatal(err)
	}
	if third := claim(t, b, "job-2", resK, 3); third.Prior != 3 || third.Record.Deliveries != 3 {
		t.Errorf("the released job's next claim: prior %d, deliveries %d; want 3 and 3", third.Prior, third.Record.Deliveries)
	}
}

func TestAResourceRemembersItsLastAppliedJob(t *testing.T) {
	t.Parallel()
	a, b, clk, kv := setupBucket(t)
	ctx := context.Background()

	newer := claim(t, a, "newer", resC, 7)
	_, err := b.Claim(ctx, "older", resC, ledger.Delivery{N: 1})
	busyOn(t, err, "newer", "second job claiming")
	if err := a.Finish(ctx, newer, 7, succeeded("newer")); err != nil {
		t.Fatal(err)
	}
	older := claim(t, b, "older", resC, 1)
	if older.Record.LastSeq != 7 || older.Record.LastJobID != "newer" {
		t.Errorf("after the newer job: last %d by %q, want 7 by \"newer\"", older.Record.LastSeq, older.Record.LastJobID)
	}
	// A job not applied frees the resource without changing its history.
	if err := b.Finish(ctx, older, 0, jobs.Encode(jobs.Result{JobID: "older", Status: jobs.StatusSuperseded})); err != nil {
		t.Fatal(err)
	}

	// A dead holder's claim lapses with its lease; until then every job
	// waits, its own included (a live duplicate must not run it twice).
	crashed := claim(t, a, "crashed", resC, 1)
	_, err = a.Claim(ctx, "crashed", resC, ledger.Delivery{N: 2})
	busyOn(t, err, "crashed", "the same job claiming again")
	_, err = b.Claim(ctx, "other", resC, ledger.Delivery{N: 1})
	busyOn(t, err, "crashed", "another job before the lease lapses")
	clk.advance(2 * time.Minute)
	other := claim(t, b, "other", resC, 1)
	if other.Record.LastSeq != 7 {
		t.Errorf("after the lease: last seq %d, want 7", other.Record.LastSeq)
	}
	if rec, err := ledger.ReadClaim(ctx, kv, "crashed", resC); err != nil || rec.State != ledger.StateRunning || rec.Attempts != 1 {
		t.Errorf("the lapsed job after the takeover: %+v, %v; want running with its 1 attempt", rec, err)
	}
	if err := a.Finish(ctx, crashed, 9, succeeded("crashed")); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("the lapsed holder finishing: %v, want ErrLost", err)
	}
}

func TestSettleFinishesAJobWhoseWorkersDied(t *testing.T) {
	t.Parallel()
	a, b, _, kv := setupBucket(t)
	ctx := context.Background()
	stranded := claim(t, a, "stranded", resK, 1)
	failed := jobs.Result{JobID: "stranded", Status: jobs.StatusFailed, Error: &jobs.ResultError{Code: "retries_exhausted"}}
	rec, err := b.Settle(ctx, "stranded", resK, failed)
	if err != nil || rec.State != ledger.StateFinal || rec.Result.Status != jobs.StatusFailed || rec.Attempts != 1 {
		t.Fatalf("settle: %+v, %v; want final, failed, its 1 attempt kept", rec, err)
	}
	if err := a.Finish(ctx, stranded, 0, succeeded("stranded")); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("the worker finishing a settled job: %v, want ErrLost", err)
	}
	// A job that did finish keeps its own result.
	done := claim(t, a, "done", resC, 1)
	if err := a.Finish(ctx, done, 0, succeeded("done")); err != nil {
		t.Fatal(err)
	}
	if rec, err := b.Settle(ctx, "done", resC, failed); err != nil || rec.Result.Status != jobs.StatusSucceeded {
		t.Errorf("settling a finished job: %+v, %v; want its succeeded result kept", rec, err)
	}
	if _, err := ledger.ReadJob(ctx, kv, "never-seen"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("an unknown job: %v, want ErrNotFound", err)
	}
	if _, err := ledger.ReadClaim(ctx, kv, "never-seen", resK); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("an unknown job's claim: %v, want ErrNotFound", err)
	}
}

func TestAJobMadeFinalFreesItsResourceInTheSameWrite(t *testing.T) {
	t.Parallel()
	a, b, _ := setup(t)
	ctx := context.Background()
	res := jobs.ResourceKey{Project: "P", Kind: jobs.KindCertificate, Name: "released"}
	finish := func(id string, applied uint64) {
		t.Helper()
		if err := a.Finish(ctx, claim(t, a, id, res, 1), applied, succeeded(id)); err != nil {
			t.Fatal(err)
		}
	}

	finish("applied", 7)
	next := claim(t, b, "next", res, 1)
	if next.Record.LastSeq != 7 || next.Record.LastJobID != "applied" {
		t.Errorf("after the applied job: last %d by %q, want 7 by \"applied\"", next.Record.LastSeq, next.Record.LastJobID)
	}
	if err := b.Finish(ctx, next, 0, succeeded("next")); err != nil {
		t.Fatal(err)
	}

	// A job made final without being applied (superseded, failed) frees the
	// resource and leaves its history alone.
	finish("not-applied", 0)
	after := claim(t, b, "after", res, 1)
	if after.Record.LastSeq != 7 || after.Record.LastJobID != "applied" {
		t.Fatalf("after a job not applied: last %d by %q; want 7 by \"applied\"", after.Record.LastSeq, after.Record.LastJobID)
	}

	// A job settled by someone else (its worker may still be calling) keeps
	// the resource until the lease lapses.
	if _, err := a.Settle(ctx, "after", res, jobs.Result{JobID: "after", Status: jobs.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Claim(ctx, "other", res, ledger.Delivery{N: 1})
	busyOn(t, err, "after", "claiming a resource whose holder was settled by another")
}

// Two messages of one job (a producer publishing it again after the
// duplicate window) may run at once: whichever claims the resource second
// finds the job final, however many jobs ran on the resource in between,
// and gives the resource back.
func TestTwoDeliveriesOfOneJobApplyItOnce(t *testing.T) {
	t.Parallel()
	a, b, _ := setup(t)
	ctx := context.Background()

	first := claim(t, a, "twice", resK, 1)
	_, err := b.Claim(ctx, "twice", resK, ledger.Delivery{N: 1})
	busyOn(t, err, "twice", "the second message while the first runs")
	if err := a.Finish(ctx, first, 3, succeeded("twice")); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Claim(ctx, "twice", resK, ledger.Delivery{N: 1}); err != nil || c.Final == nil {
		t.Fatalf("the second message after the first finished: %+v, %v; want the job final", c, err)
	}

	// Another job ran on the resource after it: the second message takes
	// the resource, reads the job final, and frees the resource again.
	if err := a.Finish(ctx, claim(t, a, "between", resK, 1), 5, succeeded("between")); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Claim(ctx, "twice", resK, ledger.Delivery{N: 1}); err != nil || c.Final == nil || c.Final.Result.Status != jobs.StatusSucceeded {
		t.Fatalf("the second message after another job: %+v, %v; want the job final", c, err)
	}
	if next := claim(t, b, "next", resK, 1); next.Record.LastSeq != 5 || next.Record.LastJobID != "between" {
		t.Errorf("the next job: last %d by %q, want 5 by \"between\" and the resource free", next.Record.LastSeq, next.Record.LastJobID)
	}
}

// A delivery that gave up waiting for its resource leaves its delivery
// count in the job record (for the stranded-jobs check); the holder of the
// resource, the same job's other message included, finishes regardless.
func TestWaitedRecordsTheDeliveriesOfAJobThatNeverGotItsResource(t *testing.T) {
	t.Parallel()
	a, b, _, kv := setupBucket(t)
	ctx := context.Background()

	holder := claim(t, a, "holder", resK, 1)
	if err := b.Waited(ctx, "waiting", 3); err != nil {
		t.Fatal(err)
	}
	if err := b.Waited(ctx, "waiting", 2); err != nil {
		t.Fatal(err)
	}
	if rec, err := ledger.ReadClaim(ctx, kv, "waiting", resK); err != nil || rec.State != ledger.StateRunning || rec.Deliveries != 3 || rec.Attempts != 0 {
		t.Errorf("a job that waited: %+v, %v; want running, 3 deliveries, no attempt", rec, err)
	}
	// The holder's own duplicate waited too.
	if err := b.Waited(ctx, "holder", 4); err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(ctx, holder, 1, succeeded("holder")); err != nil {
		t.Fatalf("finishing a job whose duplicate waited: %v", err)
	}
	rec, err := ledger.ReadJob(ctx, kv, "holder")
	if err != nil || rec.State != ledger.StateFinal || rec.Deliveries != 4 {
		t.Errorf("the finished job: %+v, %v; want final with 4 deliveries", rec, err)
	}
	waiting := claim(t, a, "waiting", resK, 4)
	if err := a.Finish(ctx, waiting, 2, succeeded("waiting")); err != nil {
		t.Fatalf("finishing a job that waited before: %v", err)
	}
}

// A Finish whose reply was lost is sent again; finding its own final
// record, it succeeds.
func TestAFinishSentTwiceSucceedsOnce(t *testing.T) {
	t.Parallel()
	a, _, _ := setup(t)
	ctx := context.Background()
	c := claim(t, a, "again", resK, 1)
	for i := range 2 {
		if err := a.Finish(ctx, c, 1, succeeded("again")); err != nil {
			t.Fatalf("finish %d: %v", i+1, err)
		}
	}
}

// The happy path costs two writes: the claim (a create, or a
// compare-and-set of the resource record) and the final record.
func TestAHappyJobCostsTwoWrites(t *testing.T) {
	t.Parallel()
	a, b, _, kv := setupBucket(t)
	ctx := context.Background()
	lastSeq := func() uint64 {
		t.Helper()
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq
	}
	for i, l := range []*ledger.Ledger{a, b, a} { // a new resource, then one held before
		id := fmt.Sprintf("happy-%d", i)
		before := lastSeq()
		if err := l.Finish(ctx, claim(t, l, id, resC, 1), uint64(i+1), succeeded(id)); err != nil {
			t.Fatal(err)
		}
		if n := lastSeq() - before; n != 2 {
			t.Errorf("job %s: %d writes, want 2", id, n)
		}
	}
}

// A Claim whose write landed but whose reply was lost (a timeout, a
// connection cut) is called again for the same delivery: it finds its own
// claim and carries on with it, rather than waiting out its own lease as a
// stranger would.
func TestAClaimRetriedAfterALostReplyAdoptsItsOwnWrite(t *testing.T) {
	t.Parallel()
	a, b, _ := setup(t)
	ctx := context.Background()
	d := ledger.Delivery{Seq: 7, N: 1}
	for _, res := range []jobs.ResourceKey{resK, resC} {
		if res == resC { // a resource held before: the claim is a compare-and-set
			if err := b.Finish(ctx, claim(t, b, "before", resC, 1), 3, succeeded("before")); err != nil {
				t.Fatal(err)
			}
		}
		id := "lost-reply-" + res.Name
		first, err := a.Claim(ctx, id, res, d)
		if err != nil {
			t.Fatal(err)
		}
		// Its reply lost, the caller knows nothing of first but retries.
		again, err := a.Claim(ctx, id, res, d)
		if err != nil {
			t.Fatalf("%s: the same delivery claiming again: %v, want its own claim back", res.Name, err)
		}
		if again.Record.Token != first.Record.Token || again.Prior != 0 || again.Record.Attempts != 1 {
			t.Errorf("%s: adopted claim %+v (prior %d), want the first write's, with no attempt counted twice", res.Name, again.Record, again.Prior)
		}
		if err := a.Finish(ctx, again, 7, succeeded(id)); err != nil {
			t.Fatalf("%s: finishing the adopted claim: %v", res.Name, err)
		}
		// Another delivery of the job finds it final.
		if c, err := a.Claim(ctx, id, res, ledger.Delivery{Seq: 7, N: 2}); err != nil || c.Final == nil {
			t.Errorf("%s: the next delivery: %+v, %v; want the job final", res.Name, c, err)
		}
	}
}
