package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
)

// settleTimeout bounds the NATS and ledger calls that settle a delivery, so
// that a job cancelled at shutdown can still record, publish and nak.
const settleTimeout = 10 * time.Second

// maxRetryAfter caps the delay a Retry-After can ask for before a job is
// tried again.
const maxRetryAfter = 5 * time.Minute

// traceHeader is the W3C trace context header carried from the job message
// to the Apinizer request and the result message.
const traceHeader = "traceparent"

// Error codes of results the worker fails itself, as opposed to Apinizer's.
const (
	codeRetriesExhausted = "retries_exhausted"
	codeUnreachable      = "apinizer_unreachable"
	codePanic            = "worker_panic"
	codeInternal         = "worker_error"
)

// action is what settle does with a delivery.
type action int

const (
	// ack: the job is final; its result is published, then the message is
	// acknowledged.
	ack action = iota
	// retry: the message is handed back with NakWithDelay.
	retry
	// giveUp: the job is final and failed; its result is published, then the
	// message is terminated.
	giveUp
	// abandon: another worker owns the job now; this delivery is left alone.
	abandon
)

// fate is what becomes of one delivery. decide and the ledger paths of
// process produce it; settle carries it out.
type fate struct {
	action action
	delay  time.Duration
	reason string
	result *jobs.Result
	// republished says result is a stored one being published again: it
	// was counted when it was first made.
	republished bool
	// applied reports that Apinizer applied the change.
	applied bool
	// dlqReason, for giveUp, is the dead-letter reason; deadLettered says
	// the record is stored already.
	dlqReason    string
	deadLettered bool
}

// delivery is one delivery of a job message.
type delivery struct {
	msg       jetstream.Msg
	seq       uint64
	delivered uint64
	received  time.Time
	started   time.Time
	job       jobs.Job
	jobID     string

	// The delivery's logger is built on first use: most jobs log nothing
	// below warn, and a handler's With formats its attributes eagerly. The
	// progress reporter logs too, hence the mutex.
	logMu sync.Mutex
	base  *slog.Logger
	attrs []any
	log   *slog.Logger
}

// with adds attributes to the delivery's log lines.
func (d *delivery) with(args ...any) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	d.attrs = append(d.attrs, args...)
	d.log = nil
}

// logger returns the delivery's logger, carrying its attributes.
func (d *delivery) logger() *slog.Logger {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	if d.log == nil {
		d.log = d.base.With(d.attrs...)
	}
	return d.log
}

func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	w.cfg.Metrics.InFlight(1)
	defer w.cfg.Metrics.InFlight(-1)

	d := &delivery{msg: msg, received: w.cfg.Now()}
	d.started = d.received
	if meta, err := msg.Metadata(); err == nil {
		d.seq, d.delivered = meta.Sequence.Stream, meta.NumDelivered
	}
	d.base = w.log
	d.with("subject", msg.Subject(), "stream_seq", d.seq, "delivery", d.delivered)

	f := w.processSafely(ctx, d)
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	w.settle(settleCtx, d, f)
}

// processSafely turns a panic anywhere in processing into a failed result for
// this job alone.
func (w *Worker) processSafely(ctx context.Context, d *delivery) (f fate) {
	defer func() {
		if p := recover(); p != nil {
			f = w.panicked(d, p)
		}
	}()
	return w.process(ctx, d)
}

func (w *Worker) process(ctx context.Context, d *delivery) fate {
	job, err := jobs.Decode(d.msg.Subject(), d.msg.Headers(), d.msg.Data())
	if err != nil {
		return w.invalid(d, err)
	}
	d.job, d.jobID = job, job.ID()
	res := job.Resource()
	d.with("job_id", d.jobID, "project", res.Project)

	if w.cfg.Ledger == nil {
		return w.keepingAlive(ctx, d, nil, func(ctx context.Context) fate { return w.apply(ctx, d, nil) })
	}
	return w.applyOnce(ctx, d)
}

// keepingAlive runs f while reporting progress on the message and renewing
// the ledger leases of h.
func (w *Worker) keepingAlive(ctx context.Context, d *delivery, h *hold, f func(context.Context) fate) fate {
	ctx, cancel := context.WithCancel(ctx)
	// Most jobs finish long before the first progress report is due, so the
	// reporter only runs once it is: a timer costs far less than a goroutine
	// with a ticker per job.
	reported := make(chan struct{})
	t := time.AfterFunc(w.cfg.AckWait/3, func() {
		defer close(reported)
		w.keepAlive(ctx, cancel, d, h)
	})
	defer func() {
		cancel()
		if !t.Stop() {
			<-reported // started: wait for it to see the cancel
		}
	}()
	return f(ctx)
}

// applyOnce claims the job and its resource in the ledger, applies the job
// unless it is final or superseded, and records the outcome before the
// result is published.
func (w *Worker) applyOnce(ctx context.Context, d *delivery) fate {
	h := &hold{ledger: w.cfg.Ledger}
	return w.keepingAlive(ctx, d, h, func(ctx context.Context) fate {
		claim, err := w.claimJob(ctx, d)
		if err != nil {
			return w.ledgerBusy(d, err, "job_busy")
		}
		if claim.Record.State == ledger.StateFinal {
			d.logger().Info("job already final, republishing its result", "status", claim.Record.Result.Status)
			return fate{action: ack, result: claim.Record.Result, republished: true}
		}
		d.started = claim.Record.StartedAt
		d.with("attempt", claim.Record.Attempts)
		h.claimed(claim)
		lock, err := w.lockResource(ctx, d, h)
		if err != nil {
			w.release(ctx, d, claim)
			return w.ledgerBusy(d, err, "resource_busy")
		}
		var f fate
		if last := lock.Record.LastSeq; last > d.seq {
			r := d.result(w.cfg.Now(), jobs.StatusSuperseded, claim.Prior, nil, nil)
			r.SupersededBy = lock.Record.LastJobID
			d.logger().Info("job superseded by a newer job already applied", "superseded_by", r.SupersededBy, "last_seq", last)
			f = fate{action: ack, result: &r}
		} else {
			f = w.apply(ctx, d, h)
		}
		return w.record(ctx, d, h, f)
	})
}

// claimJob waits, keeping the message alive, while another claim on the job
// is live: after a crash the redelivery usually comes as the dead worker's
// lease runs out, and a nak would spend a delivery on nothing. It gives up
// after two ack waits (a live duplicate still running).
func (w *Worker) claimJob(ctx context.Context, d *delivery) (*ledger.JobClaim, error) {
	return retryBusy(ctx, 2*w.cfg.AckWait, func(ctx context.Context) (*ledger.JobClaim, error) {
		return w.cfg.Ledger.ClaimJob(ctx, d.jobID)
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

// lockResource waits, keeping the message alive, until the job holds its
// resource: jobs on one resource run one at a time, and waiting here rather
// than in a nak spends none of the job's deliveries. It gives up after two
// ack waits, so a job stuck behind a dead holder's lease goes back to the
// stream.
func (w *Worker) lockResource(ctx context.Context, d *delivery, h *hold) (*ledger.ResourceLock, error) {
	lock, err := retryBusy(ctx, 2*w.cfg.AckWait, func(ctx context.Context) (*ledger.ResourceLock, error) {
		return h.ledger.LockResource(ctx, d.job.Resource(), d.jobID)
	})
	if err == nil {
		h.locked(lock)
	}
	return lock, err
}

// record stores the delivery's outcome in the ledger: a final result (with,
// first, the resource's new last-applied sequence), or the claim given back
// for a retry.
func (w *Worker) record(ctx context.Context, d *delivery, h *hold, f fate) fate {
	// Recording must not be cut short by the job's own deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	l := h.ledger
	if f.action == abandon {
		return f
	}
	if f.result == nil {
		w.release(ctx, d, h.claim)
		if err := l.UnlockResource(ctx, h.lock, 0); err != nil {
			d.logger().Warn("could not unlock resource; its lease will expire", "err", err)
		}
		return f
	}
	// The order of these writes is what makes a crash between any two of
	// them safe: see the crash table in README.md. A dead letter is stored
	// before the job is final, as a final job is never looked at again.
	if f.action == giveUp {
		if err := w.deadLetter(ctx, d, f); err != nil {
			d.logger().Warn("could not dead-letter the job; retrying the delivery", "err", err)
			w.release(ctx, d, h.claim)
			_ = l.UnlockResource(ctx, h.lock, 0)
			return fate{action: retry, delay: w.cfg.RedeliveryDelay(d.delivered), reason: "dlq"}
		}
		f.deadLettered = true
	}
	// The resource learns that this job was applied (and is freed) before
	// the job is final: an older job coming later must find it superseded
	// even if this worker dies in between.
	var applied uint64
	if f.applied {
		applied = d.seq
	}
	if err := l.UnlockResource(ctx, h.lock, applied); err != nil {
		if f.applied {
			return w.recordFailed(d, err)
		}
		d.logger().Warn("could not unlock resource; its lease will expire", "err", err)
	}
	if err := l.Finish(ctx, h.claim, *f.result); err != nil {
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
	return fate{action: retry, delay: w.cfg.RedeliveryDelay(d.delivered), reason: "ledger"}
}

func (w *Worker) release(ctx context.Context, d *delivery, c *ledger.JobClaim) {
	if err := w.cfg.Ledger.Release(ctx, c); err != nil {
		d.logger().Warn("could not release job claim; its lease will expire", "err", err)
	}
}

// ledgerBusy turns a failed claim into a retry: after the holder's lease when
// another worker holds the job or resource, after the usual delay otherwise.
func (w *Worker) ledgerBusy(d *delivery, err error, reason string) fate {
	var busy *ledger.BusyError
	if errors.As(err, &busy) {
		wait := max(busy.Until.Sub(w.cfg.Now()), 0) + 250*time.Millisecond
		return fate{action: retry, delay: min(wait, w.cfg.AckWait), reason: reason}
	}
	d.logger().Warn("ledger unavailable", "err", err)
	return fate{action: retry, delay: w.cfg.RedeliveryDelay(d.delivered), reason: "ledger"}
}

// apply calls Apinizer, then decides the fate. A call that fails because
// Apinizer is down, once the breaker has opened, waits in-process (the
// message kept alive) for the breaker to close and is made again: an outage
// of any length spends none of the job's deliveries.
func (w *Worker) apply(ctx context.Context, d *delivery, h *hold) fate {
	prior := 0
	if h != nil {
		prior = h.claim.Prior
	}
	call := executor.Call{
		PriorAttempts: prior,
		OnRetry: func(attempt int, err error, wait time.Duration) {
			w.cfg.Metrics.Retry(d.msg.Subject(), retryReason(err))
			w.breaker.observe(err)
			d.logger().Info("retrying Apinizer call", "attempt", attempt, "wait", wait, "err", err)
		},
	}
	if tp := d.msg.Headers().Get(traceHeader); tp != "" {
		call.Header = map[string][]string{traceHeader: {tp}}
	}
	if h != nil {
		call.BeforeAttempt = h.attempt
	}
	for {
		resp, err := w.call(ctx, d, call)
		w.breaker.observe(err)
		if !isOutage(err) || ctx.Err() != nil {
			return w.decide(d, prior, resp, err)
		}
		if s, _ := w.breaker.current(); s == closed {
			return w.decide(d, prior, resp, err)
		}
		d.logger().Info("Apinizer is down; the job waits for it", "attempt", call.PriorAttempts+resp.Attempts, "err", err)
		w.cfg.Metrics.Retry(d.msg.Subject(), "outage")
		if werr := w.breaker.waitClosed(ctx); werr != nil {
			return w.decide(d, prior, resp, err)
		}
		// Earlier attempts may have reached Apinizer: they count for the
		// result and for telling an already-deleted resource.
		call.PriorAttempts += resp.Attempts
		resp.Attempts = 0
		prior = call.PriorAttempts
	}
}

// call makes the Apinizer call once one of the Concurrency call slots is
// free, bounded by the job timeout.
func (w *Worker) call(ctx context.Context, d *delivery, call executor.Call) (executor.Response, error) {
	select {
	case w.calls <- struct{}{}:
	case <-ctx.Done():
		return executor.Response{}, fmt.Errorf("worker: waiting for a call slot: %w: %w", ctx.Err(), executor.ErrRetryable)
	}
	defer func() { <-w.calls }()
	ctx, cancel := context.WithTimeout(ctx, w.cfg.JobTimeout)
	defer cancel()
	return w.execute(ctx, d, call)
}

// execute runs the call, turning a panic into an error of this job.
func (w *Worker) execute(ctx context.Context, d *delivery, call executor.Call) (resp executor.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.cfg.Metrics.Panic()
			err = &panicError{value: p, stack: stack()}
			d.logger().Error("panic while applying job", "panic", fmt.Sprint(p), "stack", err.(*panicError).stack)
		}
	}()
	return w.exec.Execute(ctx, d.job, call)
}

// keepAlive reports progress every third of the ack wait so that the server
// does not redeliver a job still being worked on, and renews the ledger
// leases; if the claim was taken over, it cancels the work.
func (w *Worker) keepAlive(ctx context.Context, cancel context.CancelFunc, d *delivery, h *hold) {
	// It starts when the first report is due.
	t := time.NewTicker(w.cfg.AckWait / 3)
	defer t.Stop()
	for ctx.Err() == nil {
		if err := d.msg.InProgress(); err != nil {
			d.logger().Warn("could not report progress", "err", err)
		}
		// The renewal must not be cut off by the job finishing meanwhile:
		// its write could land with the reply lost.
		renewCtx, cancelRenew := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.AckWait/3)
		err := h.renew(renewCtx)
		cancelRenew()
		if errors.Is(err, ledger.ErrLost) {
			d.logger().Warn("claim lost while working; stopping", "err", err)
			cancel()
			return
		} else if err != nil && ctx.Err() == nil {
			d.logger().Warn("could not renew lease", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// decide is the one place where the outcome of an Apinizer call becomes the
// delivery's fate.
func (w *Worker) decide(d *delivery, prior int, resp executor.Response, err error) fate {
	attempts := prior + resp.Attempts
	now := w.cfg.Now()
	var (
		apiErr  *executor.APIError
		panicEr *panicError
	)
	switch {
	case err == nil:
		r := d.result(now, resp.Status, attempts, resp.Deployment, nil)
		if resp.AlreadyGone {
			d.logger().Info("resource already gone after an earlier attempt; the delete took effect")
		}
		return fate{action: ack, result: &r, applied: true}
	case errors.Is(err, ledger.ErrLost):
		return fate{action: abandon}
	case errors.As(err, &panicEr):
		r := d.result(now, jobs.StatusFailed, attempts, nil, &jobs.ResultError{Code: codePanic, Message: "the worker panicked while applying the job"})
		return fate{action: giveUp, result: &r, reason: codePanic, dlqReason: dlq.ReasonPanic}
	case errors.Is(err, executor.ErrPermanent):
		r := d.result(now, jobs.StatusFailed, attempts, nil, resultError(err))
		d.logger().Warn("job failed permanently", "attempts", attempts, "err", err)
		return fate{action: giveUp, result: &r, reason: r.Error.Code, dlqReason: dlq.ReasonPermanent}
	case d.delivered >= uint64(w.cfg.MaxDeliver):
		re := resultError(err)
		re.Code, re.Message = codeRetriesExhausted, fmt.Sprintf("gave up after %d deliveries: %s", d.delivered, re.Message)
		r := d.result(now, jobs.StatusFailed, attempts, nil, re)
		d.logger().Warn("job failed: out of deliveries", "attempts", attempts, "err", err)
		return fate{action: giveUp, result: &r, reason: codeRetriesExhausted, dlqReason: dlq.ReasonMaxDeliveries}
	default:
		delay := w.cfg.RedeliveryDelay(d.delivered)
		if errors.As(err, &apiErr) && apiErr.RetryAfter > delay {
			// Honoured, but not to the point where a proxy's Retry-After
			// parks a job for days.
			delay = min(apiErr.RetryAfter, maxRetryAfter)
		}
		d.logger().Info("job will be retried", "attempts", attempts, "delay", delay, "err", err)
		return fate{action: retry, delay: delay, reason: retryReason(err)}
	}
}

// invalid fails a message that is not a valid job. It is never retried.
func (w *Worker) invalid(d *delivery, err error) fate {
	var de *jobs.DecodeError
	code := "invalid_job"
	if errors.As(err, &de) {
		code, d.jobID = de.Code(), de.JobID
	}
	w.cfg.Metrics.InvalidJob(code)
	d.with("job_id", d.jobID)
	d.logger().Warn("invalid job", "code", code, "err", err)
	f := fate{action: giveUp, reason: code, dlqReason: dlq.ReasonInvalid}
	if d.jobID != "" {
		r := d.result(w.cfg.Now(), jobs.StatusFailed, 0, nil, &jobs.ResultError{Code: code, Message: err.Error()})
		f.result = &r
	}
	return f
}

func (w *Worker) panicked(d *delivery, p any) fate {
	w.cfg.Metrics.Panic()
	d.logger().Error("panic while handling job", "panic", fmt.Sprint(p), "stack", stack())
	f := fate{action: giveUp, reason: codePanic, dlqReason: dlq.ReasonPanic}
	if d.jobID != "" {
		r := d.result(w.cfg.Now(), jobs.StatusFailed, 0, nil, &jobs.ResultError{Code: codePanic, Message: "the worker panicked while handling the job"})
		f.result = &r
	}
	return f
}

// settle carries out a fate: the result is published (and acknowledged by
// the server) before the job message is acknowledged or terminated, so no
// result is ever lost.
func (w *Worker) settle(ctx context.Context, d *delivery, f fate) {
	var err error
	switch f.action {
	case abandon:
		return
	case retry:
		w.cfg.Metrics.Retry(d.msg.Subject(), f.reason)
		err = d.msg.NakWithDelay(f.delay)
	case ack, giveUp:
		if f.action == giveUp && !f.deadLettered {
			if dlqErr := w.deadLetter(ctx, d, f); dlqErr != nil {
				d.logger().Warn("could not dead-letter the job; it will be redelivered", "err", dlqErr)
				err = d.msg.NakWithDelay(w.cfg.RedeliveryDelay(d.delivered))
				break
			}
		}
		if f.result != nil {
			if pubErr := w.publish(ctx, d, *f.result); pubErr != nil {
				d.logger().Warn("could not publish result; the job will be redelivered", "err", pubErr)
				w.cfg.Metrics.Retry(d.msg.Subject(), "result_publish")
				err = d.msg.NakWithDelay(w.cfg.RedeliveryDelay(d.delivered))
				break
			}
			if !f.republished {
				w.cfg.Metrics.JobFinished(*f.result, w.cfg.Now().Sub(d.started))
				d.logger().Info("job finished", "status", f.result.Status, "attempts", f.result.Attempts)
			}
		}
		if f.action == ack {
			err = d.msg.Ack()
		} else {
			err = d.msg.TermWithReason(f.reason)
		}
	}
	if err != nil {
		d.logger().Warn("could not settle message; it will be redelivered", "err", err)
	}
}

// deadLetter stores the delivery's job in the dead-letter stream.
func (w *Worker) deadLetter(ctx context.Context, d *delivery, f fate) error {
	rec := dlq.NewRecord(d.msg.Subject(), d.msg.Headers(), d.msg.Data(), f.dlqReason)
	rec.JobID, rec.StreamSeq, rec.Deliveries = d.jobID, d.seq, d.delivered
	rec.FirstSeen, rec.DeadAt = d.started.UTC(), w.cfg.Now().UTC()
	if f.result != nil {
		rec.Error, rec.Attempts = f.result.Error, f.result.Attempts
	}
	return w.storeDeadLetter(ctx, d.logger(), rec)
}

func (w *Worker) storeDeadLetter(ctx context.Context, log *slog.Logger, rec dlq.Record) error {
	if err := dlq.Publish(ctx, w.js, rec); err != nil {
		return err
	}
	w.cfg.Metrics.DeadLetter(rec.Subject, rec.Reason)
	log.Warn("job dead-lettered", "reason", rec.Reason, "payload_bytes", rec.PayloadSize)
	return nil
}

func (w *Worker) publish(ctx context.Context, d *delivery, r jobs.Result) error {
	return w.publishResult(ctx, d.msg.Subject(), d.msg.Headers(), r)
}

// publishResult publishes r for a job on subject, carrying the job's trace
// context, and waits for JetStream's acknowledgement.
func (w *Worker) publishResult(ctx context.Context, subject string, jobHeader nats.Header, r jobs.Result) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	msg := nats.NewMsg(jobs.ResultSubject(subject))
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, jobs.ResultMsgID(r.JobID))
	if tp := jobHeader.Get(traceHeader); tp != "" {
		msg.Header.Set(traceHeader, tp)
	}
	if _, err := w.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	return nil
}

// result builds the delivery's result. It never carries the certificate or
// the token: only names, statuses and Apinizer's messages.
func (d *delivery) result(now time.Time, status jobs.Status, attempts int, dep *jobs.DeploymentResult, rerr *jobs.ResultError) jobs.Result {
	r := jobs.Result{
		JobID:            d.jobID,
		Subject:          d.msg.Subject(),
		Status:           status,
		Attempts:         attempts,
		StartedAt:        d.started.UTC(),
		FinishedAt:       now.UTC(),
		DeploymentResult: dep,
		Error:            rerr,
		ReplayOf:         d.msg.Headers().Get(dlq.ReplayOfHeader),
	}
	if d.job != nil {
		res := d.job.Resource()
		r.ProjectName, r.ResourceName = res.Project, res.Name
	}
	return r
}

// resultError describes a failed call for the result.
func resultError(err error) *jobs.ResultError {
	var (
		apiErr *executor.APIError
		trErr  *executor.TransportError
	)
	switch {
	case errors.As(err, &apiErr):
		return &jobs.ResultError{Code: apiErr.Code, Message: apiErr.Message, HTTPStatus: apiErr.StatusCode, Retryable: errors.Is(err, executor.ErrRetryable)}
	case errors.As(err, &trErr):
		return &jobs.ResultError{Code: codeUnreachable, Message: trErr.Error(), Retryable: true}
	default:
		return &jobs.ResultError{Code: codeInternal, Message: err.Error(), Retryable: errors.Is(err, executor.ErrRetryable)}
	}
}

// retryReason is the bounded retries_total reason of an error.
func retryReason(err error) string {
	var apiErr *executor.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode == 429:
		return "http_429"
	case errors.As(err, &apiErr) && apiErr.StatusCode >= 500:
		return "http_5xx"
	case errors.As(err, &apiErr):
		return "http_4xx"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "transport"
	}
}

// hold is the ledger state a job holds while it runs. Progress reports and
// attempts update it from two goroutines, hence the mutex; a nil hold (no
// ledger) does nothing.
type hold struct {
	mu     sync.Mutex
	ledger *ledger.Ledger
	claim  *ledger.JobClaim     // nil until the job is claimed
	lock   *ledger.ResourceLock // nil until the resource is locked
	done   bool                 // the outcome is recorded: nothing to renew
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
	if h.done || h.claim == nil {
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

// panicError is a recovered panic, reported as the job's error.
type panicError struct {
	value any
	stack string
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

func stack() string {
	buf := make([]byte, 4096)
	return string(buf[:runtime.Stack(buf, false)])
}
