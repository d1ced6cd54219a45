package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/tracecontext"
)

// settleTimeout bounds the NATS and ledger calls that settle a delivery, so
// that a job cancelled at shutdown can still record, publish and nak.
const settleTimeout = 10 * time.Second

// settle carries out a decided fate, in one order: the dead letter, the
// ledger record, the result, and last the message's ack, term or nak. Each
// step starts once the one before it is stored, so that a crash between any
// two leaves what a redelivery finishes (the crash table in README.md): a
// dead letter is stored before the job is final, as a final job is never
// looked at again; and the result is published (acknowledged by the server)
// before the message is acknowledged, so no result is ever lost. A step that
// JetStream cannot store waits for it (stored), until stop ends; a step
// that fails otherwise turns the fate into a retry. Each NATS call is
// bounded by settleTimeout, even after stop has ended.
func (w *Worker) settle(stop context.Context, d *delivery, h *hold, f fate) {
	if f.action == abandon {
		return
	}
	now := w.cfg.Now()
	// The result is encoded once, for the ledger and the publish.
	var result *jobs.Encoded
	switch {
	case f.action == republish:
		e := jobs.Encode(*f.stored)
		result = &e
	case f.outcome != nil:
		e := d.result(*f.outcome, now)
		result = &e
	}
	if f.action == giveUp {
		rec := d.jobRef.deadLetter(f.dlqReason, result.Result, now)
		err := storedErr(stop, w, objDLQ, func(ctx context.Context) error { return w.deadLetter(ctx, d.logger(), rec) })
		if err != nil {
			d.logger().Warn("could not dead-letter the job; retrying the delivery", "err", err)
			f = fate{action: retry, delay: w.cfg.RedeliveryDelay(d.deliveries), reason: "dlq"}
		}
	}
	if f = w.record(stop, d, h, f, result); f.action == abandon {
		return
	}
	// A message that names no job id still gets a result, keyed by its
	// stream sequence (jobRef.resultMsgID).
	if f.action != retry && result != nil {
		err := storedErr(stop, w, objResults, func(ctx context.Context) error { return w.publishResult(ctx, &d.jobRef, *result) })
		if err != nil {
			d.logger().Warn("could not publish result; the job will be redelivered", "err", err)
			f = fate{action: retry, delay: w.cfg.RedeliveryDelay(d.deliveries), reason: "result_publish"}
		} else if f.action != republish {
			// A republished result was counted when it was first made.
			w.cfg.Metrics.JobFinished(result.Result, w.cfg.Now().Sub(d.started))
			w.logFinished(d, h.held(), result.Result)
		}
	}
	var err error
	switch f.action {
	case retry:
		w.cfg.Metrics.Retry(d.subject, f.reason)
		err = d.msg.NakWithDelay(f.delay)
	case giveUp:
		err = d.msg.TermWithReason(f.reason)
	default:
		err = d.msg.Ack()
	}
	if err != nil {
		d.logger().Warn("could not settle message; it will be redelivered", "err", err)
	}
}

// logFinished logs a job's end. A failed job gets one line at warn, with
// what an operator needs to act on it (its code and message); the lines
// that led to it (the decision, the dead letter) are at debug. A claimed
// job's lines carry its attempt already (applyOnce).
func (w *Worker) logFinished(d *delivery, claimed bool, r jobs.Result) {
	if r.Status != jobs.StatusFailed {
		d.logger().Info("job finished", "status", r.Status, "attempts", r.Attempts)
		return
	}
	args := []any{"attempts", r.Attempts}
	if !claimed {
		args = append(args, "attempt", r.Attempts)
	}
	if r.Error != nil {
		args = append(args, "code", r.Error.Code, "message", r.Error.Message)
	}
	d.logger().Warn("job failed", args...)
}

// record stores the delivery's end in the ledger: for a retry, the claim
// and the resource lock are given back; for a final result, one write
// records it, frees the resource and tells it whether this job was applied,
// so that an older job coming later finds itself superseded.
func (w *Worker) record(stop context.Context, d *delivery, h *hold, f fate, result *jobs.Encoded) fate {
	if !h.held() {
		return f // no ledger, or nothing claimed
	}
	if f.action == retry || result == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), settleTimeout)
		defer cancel()
		h.giveBack(ctx, d.logger())
		return f
	}
	var applied uint64
	if f.outcome.applied() {
		applied = d.seq
	}
	if err := storedErr(stop, w, objLedger, func(ctx context.Context) error { return h.finish(ctx, applied, *result) }); err != nil {
		return w.recordFailed(d, err)
	}
	return f
}

func (w *Worker) recordFailed(d *delivery, err error) fate {
	if errors.Is(err, ledger.ErrLost) {
		d.logger().Warn("claim lost to another worker; leaving the job to it", "err", err)
		return fate{action: abandon}
	}
	d.logger().Warn("could not record the job's outcome; retrying the delivery", "err", err)
	return fate{action: retry, delay: w.cfg.RedeliveryDelay(d.deliveries), reason: "ledger"}
}

// deadLetter stores a job in the dead-letter stream. It is the one place a
// dead letter is written: settle calls it for a delivery given up on, and
// the advisories path for a job the server gave up on.
func (w *Worker) deadLetter(ctx context.Context, log *slog.Logger, rec dlq.Record) error {
	if err := dlq.Publish(ctx, w.js, rec); err != nil {
		return err
	}
	w.cfg.Metrics.DeadLetter(rec.Subject, rec.Reason)
	// At debug: the job's one warn line, with its code, is its caller's.
	log.Debug("job dead-lettered", "reason", rec.Reason, "payload_bytes", rec.PayloadSize)
	return nil
}

// publishResult publishes the result r of job j, carrying the job's trace
// context, and waits for JetStream's acknowledgement.
func (w *Worker) publishResult(ctx context.Context, j *jobRef, r jobs.Encoded) error {
	msg := nats.NewMsg(j.resultSubject())
	msg.Data = r.JSON
	msg.Header.Set(nats.MsgIdHdr, j.resultMsgID(r.Result))
	if tp, ok := tracecontext.Parse(j.header.Get(traceHeader)); ok {
		msg.Header.Set(traceHeader, tp)
	}
	if _, err := w.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	return nil
}
