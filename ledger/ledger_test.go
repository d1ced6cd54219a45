package ledger_test

import (
	"context"
	"errors"
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

func TestAJobIsClaimedByOneWorkerUntilItsLeaseLapses(t *testing.T) {
	t.Parallel()
	a, b, clk := setup(t)
	ctx := context.Background()

	claim, err := a.ClaimJob(ctx, "job-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if claim.Prior != 0 || claim.Record.Attempts != 1 {
		t.Errorf("fresh claim: prior %d, attempts %d; want 0 and 1 (the claim counts its first attempt)", claim.Prior, claim.Record.Attempts)
	}
	var busy *ledger.BusyError
	if _, err := b.ClaimJob(ctx, "job-1", 1); !errors.As(err, &busy) || busy.Holder != "worker-a" {
		t.Fatalf("second worker's claim: %v, want busy, held by worker-a", err)
	}
	if _, err := a.ClaimJob(ctx, "job-1", 1); !errors.Is(err, ledger.ErrBusy) {
		t.Fatalf("the same worker claiming again: %v, want busy: one process must not run a job twice", err)
	}
	// The first attempt is counted by the claim; the second is written.
	if err := a.Attempt(ctx, claim, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Attempt(ctx, claim, 2); err != nil {
		t.Fatal(err)
	}

	clk.advance(2 * time.Minute) // worker-a died: its lease lapses
	taken, err := b.ClaimJob(ctx, "job-1", 1)
	if err != nil {
		t.Fatalf("claim after the lease: %v", err)
	}
	if taken.Prior != 2 || taken.Record.Attempts != 3 || taken.Record.Owner != "worker-b" {
		t.Errorf("taken over: prior %d, attempts %d, owner %s; want 2, 3, worker-b", taken.Prior, taken.Record.Attempts, taken.Record.Owner)
	}
	if err := a.Renew(ctx, claim); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("the old holder renewing: %v, want ErrLost", err)
	}
	if err := b.Finish(ctx, taken, jobs.Result{JobID: "job-1", Status: jobs.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	final, err := a.ClaimJob(ctx, "job-1", 1)
	if err != nil || final.Record.State != ledger.StateFinal || final.Record.Result.Status != jobs.StatusSucceeded {
		t.Errorf("claim of a final job: %+v, %v; want the stored result", final, err)
	}
}

// A job may wait long for its first attempt (for a call slot, across a
// network partition). Once half its lease has gone by, the attempt checks
// with a write that the job and its resource are still held.
func TestAFirstAttemptAfterALongWaitChecksTheClaim(t *testing.T) {
	t.Parallel()
	a, b, clk := setup(t)
	ctx := context.Background()
	res := jobs.ResourceKey{Project: "P", Kind: jobs.KindKey, Name: "k"}
	claim, err := a.ClaimJob(ctx, "job-wait", 1)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := a.LockResource(ctx, res, "job-wait")
	if err != nil {
		t.Fatal(err)
	}

	// Still held after 40s of a 1m lease: the check renews both leases.
	clk.advance(40 * time.Second)
	if err := a.Attempt(ctx, claim, 1); err != nil {
		t.Fatalf("attempt 1 after 40s: %v", err)
	}
	if err := a.ConfirmResource(ctx, lk); err != nil {
		t.Fatalf("resource after 40s: %v", err)
	}
	clk.advance(40 * time.Second) // 80s after the claim, 40s after the renewal
	if _, err := b.ClaimJob(ctx, "job-wait", 1); !errors.Is(err, ledger.ErrBusy) {
		t.Fatalf("another worker 40s after the renewal: %v, want busy", err)
	}

	// Taken over while the first worker was cut off: its attempt must not go out.
	clk.advance(2 * time.Minute)
	if _, err := b.ClaimJob(ctx, "job-wait", 1); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if _, err := b.LockResource(ctx, res, "job-wait"); err != nil {
		t.Fatalf("resource takeover: %v", err)
	}
	if err := a.Attempt(ctx, claim, 1); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("first attempt after the takeover: %v, want ErrLost", err)
	}
	if err := a.ConfirmResource(ctx, lk); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("resource after the takeover: %v, want ErrLost", err)
	}
}

func TestAReleasedJobIsTakenAtOnce(t *testing.T) {
	t.Parallel()
	a, b, _ := setup(t)
	ctx := context.Background()
	claim, err := a.ClaimJob(ctx, "job-2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, claim); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimJob(ctx, "job-2", 1); err != nil {
		t.Errorf("claim after release: %v, want it at once", err)
	}
}

func TestAResourceRemembersItsLastAppliedJob(t *testing.T) {
	t.Parallel()
	a, b, clk := setup(t)
	ctx := context.Background()
	res := jobs.ResourceKey{Project: "P", Kind: jobs.KindCertificate, Name: "c"}

	lk, err := a.LockResource(ctx, res, "newer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LockResource(ctx, res, "older"); !errors.Is(err, ledger.ErrBusy) {
		t.Fatalf("second job locking: %v, want busy", err)
	}
	if err := a.UnlockResource(ctx, lk, 7); err != nil {
		t.Fatal(err)
	}
	lk2, err := b.LockResource(ctx, res, "older")
	if err != nil {
		t.Fatal(err)
	}
	if lk2.Record.LastSeq != 7 || lk2.Record.LastJobID != "newer" {
		t.Errorf("after the newer job: last %d by %q, want 7 by \"newer\"", lk2.Record.LastSeq, lk2.Record.LastJobID)
	}
	// A failed job frees the resource without changing its history.
	if err := b.UnlockResource(ctx, lk2, 0); err != nil {
		t.Fatal(err)
	}
	// A dead holder's lock lapses with its lease; its own job may retake it.
	held, err := a.LockResource(ctx, res, "crashed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.LockResource(ctx, res, "crashed"); err != nil {
		t.Errorf("the same job retaking its lock: %v, want it at once", err)
	}
	if _, err := b.LockResource(ctx, res, "other"); !errors.Is(err, ledger.ErrBusy) {
		t.Errorf("another job before the lease lapses: %v, want busy", err)
	}
	clk.advance(2 * time.Minute)
	lk3, err := b.LockResource(ctx, res, "other")
	if err != nil || lk3.Record.LastSeq != 7 {
		t.Errorf("after the lease: %+v, %v; want the lock with last seq 7", lk3, err)
	}
	if err := a.UnlockResource(ctx, held, 9); !errors.Is(err, ledger.ErrLost) {
		t.Errorf("the lapsed holder unlocking: %v, want ErrLost", err)
	}
}

func TestSettleFinishesAJobWhoseWorkersDied(t *testing.T) {
	t.Parallel()
	a, b, _, kv := setupBucket(t)
	ctx := context.Background()
	if _, err := a.ClaimJob(ctx, "stranded", 1); err != nil {
		t.Fatal(err)
	}
	failed := jobs.Result{JobID: "stranded", Status: jobs.StatusFailed, Error: &jobs.ResultError{Code: "retries_exhausted"}}
	rec, err := b.Settle(ctx, "stranded", failed)
	if err != nil || rec.State != ledger.StateFinal || rec.Result.Status != jobs.StatusFailed || rec.Attempts != 1 {
		t.Fatalf("settle: %+v, %v; want final, failed, its 1 attempt kept", rec, err)
	}
	// A job that did finish keeps its own result.
	done, err := a.ClaimJob(ctx, "done", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(ctx, done, jobs.Result{JobID: "done", Status: jobs.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if rec, err := b.Settle(ctx, "done", failed); err != nil || rec.Result.Status != jobs.StatusSucceeded {
		t.Errorf("settling a finished job: %+v, %v; want its succeeded result kept", rec, err)
	}
	if _, err := ledger.ReadJob(ctx, kv, "never-seen"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("an unknown job: %v, want ErrNotFound", err)
	}
}

func TestAJobMadeFinalFreesItsResourceInTheSameWrite(t *testing.T) {
	t.Parallel()
	a, b, _ := setup(t)
	ctx := context.Background()
	res := jobs.ResourceKey{Project: "P", Kind: jobs.KindCertificate, Name: "released"}
	finish := func(id string, applied uint64) {
		t.Helper()
		c, err := a.ClaimJob(ctx, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		lk, err := a.LockResource(ctx, res, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.FinishReleasing(ctx, c, lk, applied, jobs.Result{JobID: id, Status: jobs.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
	}

	finish("applied", 7)
	lk, err := b.LockResource(ctx, res, "next")
	if err != nil {
		t.Fatalf("locking after the holder was made final: %v, want the lock at once", err)
	}
	if lk.Record.LastSeq != 7 || lk.Record.LastJobID != "applied" {
		t.Errorf("after the applied job: last %d by %q, want 7 by \"applied\"", lk.Record.LastSeq, lk.Record.LastJobID)
	}
	if err := b.UnlockResource(ctx, lk, 0); err != nil {
		t.Fatal(err)
	}

	// A job made final without being applied (superseded, failed) frees the
	// resource and leaves its history alone.
	finish("not-applied", 0)
	lk, err = b.LockResource(ctx, res, "after")
	if err != nil || lk.Record.LastSeq != 7 || lk.Record.LastJobID != "applied" {
		t.Fatalf("after a job not applied: %+v, %v; want the lock with last 7 by \"applied\"", lk, err)
	}

	// A job settled by someone else (its worker may still be calling) keeps
	// its lock until the lease lapses.
	if _, err := a.Settle(ctx, "after", jobs.Result{JobID: "after", Status: jobs.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LockResource(ctx, res, "other"); !errors.Is(err, ledger.ErrBusy) {
		t.Errorf("locking a resource whose holder was settled by another: %v, want busy", err)
	}
}
