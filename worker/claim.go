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

// applyOnce claims the job in the ledger (in its resource's record), and
// applies the job unless it is final or superseded. settle records the
// outcome before the result is published.
func (w *Worker) applyOnce(ctx context.Context, d *delivery, h *hold) fate {
	claim, err := w.claim(ctx, d)
	if err != nil {
		return w.busy(ctx, d, err)
	}
	if claim.Final != nil {
		d.logger().Info("job already final, republishing its result", "status", claim.Final.Result.Status)
		return fate{action: republish, stored: claim.Final.Result}
	}
	d.started = claim.Record.StartedAt
	d.with("attempt", claim.Record.Attempts)
	h.claimed(claim)
	if last := claim.Record.LastSeq; last > d.seq {
		d.logger().Info("job superseded by a newer job already applied", "superseded_by", claim.Record.LastJobID, "last_seq", last)
		return fate{action: ack, outcome: &outcome{status: jobs.StatusSuperseded, attempts: claim.Prior, supersededBy: claim.Record.LastJobID}}
	}
	return w.apply(ctx, d, h)
}

// busy turns a failed claim into a retry. A delivery that gave up waiting
// for its resource is recorded in the job record first: a job that spends
// every delivery waiting is stranded, and only its deliveries tell.
func (w *Worker) busy(ctx context.Context, d *delivery, err error) fate {
	var b *ledger.BusyError
	if !errors.As(err, &b) {
		d.logger().Warn("ledger unavailable", "err", err)
		return busy(err, "job_busy", w.cfg.Now(), w.ackWait, w.cfg.RedeliveryDelay(d.deliveries))
	}
	reason := "resource_busy"
	if b.Job == d.jobID {
		reason = "job_busy"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if werr := w.cfg.Ledger.Waited(ctx, d.jobID, d.deliveries); werr != nil {
		d.logger().Warn("could not record the delivery in the ledger", "err", werr)
	}
	return busy(err, reason, w.cfg.Now(), w.ackWait, w.cfg.RedeliveryDelay(d.deliveries))
}

// claim waits, keeping the message alive, until the job holds its
// resource: jobs on one resource run one at a time, and waiting here rather
// than in a nak spends none of the job's deliveries; after a crash, too,
// the redelivery usually comes as the dead worker's lease runs out. It
// gives up after two ack waits, so a job stuck behind a dead holder's lease
// (or a live duplicate of itself) goes back to the stream. It waits out a
// JetStream outage too (stored): it is no reason to spend a delivery.
func (w *Worker) claim(ctx context.Context, d *delivery) (*ledger.Claim, error) {
	return retryBusy(ctx, 2*w.ackWait, func(ctx context.Context) (*ledger.Claim, error) {
		return stored(ctx, w, objLedger, func(ctx context.Context) (*ledger.Claim, error) {
			return w.cfg.Ledger.Claim(ctx, d.jobID, d.job.Resource(), ledger.Delivery{Seq: d.seq, N: d.deliveries})
		})
	})
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

// hold is the ledger claim a job holds while it runs. Progress reports and
// attempts update it from two goroutines, hence the mutex; a nil hold (no
// ledger) does nothing. Once the job's keep-alive has stopped, settle reads
// it alone.
type hold struct {
	mu     sync.Mutex
	ledger *ledger.Ledger
	claim  *ledger.Claim // nil until the job is claimed
	// sent counts the HTTP requests this delivery sent.
	sent int
}

// held reports whether the job was claimed (a nil hold: no ledger).
func (h *hold) held() bool { return h != nil && h.claim != nil }

func (h *hold) claimed(c *ledger.Claim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claim = c
}

// attempt runs before each HTTP attempt: it counts the attempt and makes
// sure that the claim is still held.
func (h *hold) attempt(ctx context.Context, n int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ledger.Attempt(ctx, h.claim, n)
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
	return h.ledger.Renew(ctx, h.claim)
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

// giveBack releases the claim for a later delivery, its attempt count set
// to the requests actually sent; a release that fails lapses with its
// lease.
func (h *hold) giveBack(ctx context.Context, log *slog.Logger) {
	h.claim.Sent(h.sent)
	if err := h.ledger.Release(ctx, h.claim); err != nil {
		log.Warn("could not release job claim; its lease will expire", "err", err)
	}
}

// finish records the job's final result r and, in the same write, frees its
// resource, recording appliedSeq (if not 0) as the last job applied to it.
func (h *hold) finish(ctx context.Context, appliedSeq uint64, r jobs.Encoded) error {
	return h.ledger.Finish(ctx, h.claim, appliedSeq, r)
}
