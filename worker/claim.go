package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
)

// applyOnce claims the job and its resource in the ledger, and applies the
// job unless it is final or superseded. settle records the outcome before
// the result is published.
func (w *Worker) applyOnce(ctx context.Context, d *delivery, h *hold) fate {
	claim, err := w.claimJob(ctx, d)
	if err != nil {
		return w.busy(d, err, "job_busy")
	}
	if claim.Record.State == ledger.StateFinal {
		d.logger().Info("job already final, republishing its result", "status", claim.Record.Result.Status)
		return fate{action: republish, stored: claim.Record.Result}
	}
	d.started = claim.Record.StartedAt
	d.with("attempt", claim.Record.Attempts)
	h.claimed(claim)
	lock, err := w.lockResource(ctx, d, h)
	if err != nil {
		return w.busy(d, err, "resource_busy")
	}
	if last := lock.Record.LastSeq; last > d.seq {
		d.logger().Info("job superseded by a newer job already applied", "superseded_by", lock.Record.LastJobID, "last_seq", last)
		return fate{action: ack, outcome: &outcome{status: jobs.StatusSuperseded, attempts: claim.Prior, supersededBy: lock.Record.LastJobID}}
	}
	return w.apply(ctx, d, h)
}

// busy turns a failed claim or lock into a retry.
func (w *Worker) busy(d *delivery, err error, reason string) fate {
	var b *ledger.BusyError
	if !errors.As(err, &b) {
		d.logger().Warn("ledger unavailable", "err", err)
	}
	return busy(err, reason, w.cfg.Now(), w.ackWait, w.cfg.RedeliveryDelay(d.deliveries))
}

// claimJob waits, keeping the message alive, while another claim on the job
// is live: after a crash the redelivery usually comes as the dead worker's
// lease runs out, and a nak would spend a delivery on nothing. It gives up
// after two ack waits (a live duplicate still running). Like lockResource,
// it waits out a JetStream outage too (stored): it is no reason to spend a
// delivery.
func (w *Worker) claimJob(ctx context.Context, d *delivery) (*ledger.JobClaim, error) {
	return retryBusy(ctx, 2*w.ackWait, func(ctx context.Context) (*ledger.JobClaim, error) {
		return stored(ctx, w, objLedger, func(ctx context.Context) (*ledger.JobClaim, error) {
			return w.cfg.Ledger.ClaimJob(ctx, d.jobID, d.deliveries)
		})
	})
}

// lockResource waits, keeping the message alive, until the job holds its
// resource: jobs on one resource run one at a time, and waiting here rather
// than in a nak spends none of the job's deliveries. It gives up after two
// ack waits, so a job stuck behind a dead holder's lease goes back to the
// stream.
func (w *Worker) lockResource(ctx context.Context, d *delivery, h *hold) (*ledger.ResourceLock, error) {
	lock, err := retryBusy(ctx, 2*w.ackWait, func(ctx context.Context) (*ledger.ResourceLock, error) {
		return stored(ctx, w, objLedger, func(ctx context.Context) (*ledger.ResourceLock, error) {
			return h.ledger.LockResource(ctx, d.job.Resource(), d.jobID)
		})
	})
	if err == nil {
		h.locked(lock)
	}
	return lock, err
}

// retryBusy calls f until it does not fail with a *ledger.BusyError, backing
// off from 20ms to 1s, for at most limit after the first busy answer.
func retryBusy[T any](ctx context.Context, limit time.Duration, f func(context.Context) (T, error)) (T, error) {
	v, err := f(ctx)
	var busy *ledger.BusyError
	if !errors.As(err, &busy) {
		return v, err
	}
	// The deadline is only set up once waiting starts: almost every call
	// succeeds at once.
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for wait := 20 * time.Millisecond; sleep(ctx, wait); wait = min(2*wait, time.Second) {
		if v, err = f(ctx); !errors.As(err, &busy) {
			break
		}
	}
	return v, err
}

// hold is the ledger state a job holds while it runs. Progress reports and
// attempts update it from two goroutines, hence the mutex; a nil hold (no
// ledger) does nothing. Once the job's keep-alive has stopped, settle reads
// it alone.
type hold struct {
	mu     sync.Mutex
	ledger *ledger.Ledger
	claim  *ledger.JobClaim     // nil until the job is claimed
	lock   *ledger.ResourceLock // nil until the resource is locked
	// sent counts the HTTP requests this delivery sent.
	sent int
}

func (h *hold) claimed(c *ledger.JobClaim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claim = c
}

func (h *hold) locked(lk *ledger.ResourceLock) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lock = lk
}

// attempt runs before each HTTP attempt: it counts the attempt and makes
// sure that the job and its resource are still held.
func (h *hold) attempt(ctx context.Context, n int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ledger.Attempt(ctx, h.claim, n); err != nil {
		return err
	}
	if h.lock == nil {
		return nil
	}
	return h.ledger.ConfirmResource(ctx, h.lock)
}

func (h *hold) renew(ctx context.Context) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claim == nil {
		return nil
	}
	if err := h.ledger.Renew(ctx, h.claim); err != nil {
		return err
	}
	if h.lock == nil {
		return nil
	}
	return h.ledger.RenewResource(ctx, h.lock)
}

// sentRequests counts the HTTP requests of one call.
func (h *hold) sentRequests(n int) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent += n
}

// giveBack releases the claim and the resource lock for a later delivery,
// its attempt count set to the requests actually sent; a release that fails
// lapses with its lease.
func (h *hold) giveBack(ctx context.Context, log *slog.Logger) {
	h.claim.Sent(h.sent)
	if err := h.ledger.Release(ctx, h.claim); err != nil {
		log.Warn("could not release job claim; its lease will expire", "err", err)
	}
	h.unlock(ctx, log)
}

// unlock frees the resource for a later delivery; an unlock that fails
// lapses with its lease.
func (h *hold) unlock(ctx context.Context, log *slog.Logger) {
	if h.lock == nil {
		return
	}
	if err := h.ledger.UnlockResource(ctx, h.lock, 0); err != nil {
		log.Warn("could not unlock resource; its lease will expire", "err", err)
	}
}

// finish records the job's final result r and, in the same write, frees its
// resource, recording appliedSeq (if not 0) as the last job applied to it.
func (h *hold) finish(ctx context.Context, appliedSeq uint64, r jobs.Result) error {
	return h.ledger.FinishReleasing(ctx, h.claim, h.lock, appliedSeq, r)
}
