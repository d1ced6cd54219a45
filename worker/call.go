package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
)

// apply calls Apinizer, then decides the fate. A call that fails because
// Apinizer is down, once the breaker has opened, waits in-process (the
// message kept alive) until the breaker lets it through again (call): an
// outage of any length, a half outage included, spends none of the job's
// deliveries.
func (w *Worker) apply(ctx context.Context, d *delivery, h *hold) fate {
	prior := 0
	if h != nil {
		prior = h.claim.Prior
	}
	call := executor.Call{
		PriorAttempts: prior,
		OnRetry: func(attempt int, err error, wait time.Duration) {
			w.cfg.Metrics.Retry(d.subject, retryReason(err))
			w.breaker.observe(err)
			d.logger().Info("retrying Apinizer call", "attempt", attempt, "wait", wait, "err", err)
		},
	}
	if tp := d.header.Get(traceHeader); tp != "" {
		call.Header = map[string][]string{traceHeader: {tp}}
	}
	if h != nil {
		call.BeforeAttempt = func(ctx context.Context, n int) error {
			return storedErr(ctx, w, objLedger, func(ctx context.Context) error { return h.attempt(ctx, n) })
		}
	}
	for {
		resp, err := w.call(ctx, d, call)
		h.sentRequests(resp.Attempts)
		if !isOutage(err) || ctx.Err() != nil {
			return w.decided(d, call.PriorAttempts, resp, err)
		}
		if s, _ := w.breaker.current(); s == closed {
			return w.decided(d, call.PriorAttempts, resp, err)
		}
		d.logger().Info("Apinizer is down; the job waits for it", "attempt", call.PriorAttempts+resp.Attempts, "err", err)
		w.cfg.Metrics.Retry(d.subject, "outage")
		// Earlier attempts may have reached Apinizer: they count for the
		// result and for telling an already-deleted resource.
		call.PriorAttempts += resp.Attempts
	}
}

// decided asks decide for the delivery's fate, and logs it. A job given up
// on is logged at debug here: settle writes its one warn line, with the
// result's code and message.
func (w *Worker) decided(d *delivery, prior int, resp executor.Response, err error) fate {
	f := decide(attempt{
		delivered: d.deliveries, maxDeliver: w.maxDeliver, prior: prior,
		backoff: w.cfg.RedeliveryDelay(d.deliveries), resp: resp, err: err,
	})
	attempts := prior + resp.Attempts
	switch {
	case resp.AlreadyGone && err == nil:
		d.logger().Info("resource already gone after an earlier attempt; the delete took effect")
	case f.action == retry:
		d.logger().Info("job will be retried", "attempts", attempts, "delay", f.delay, "err", err)
	case f.dlqReason == dlq.ReasonPermanent:
		d.logger().Debug("job failed permanently", "attempts", attempts, "err", err)
	case f.dlqReason == dlq.ReasonMaxDeliveries:
		d.logger().Debug("job failed: out of deliveries", "attempts", attempts, "err", err)
	}
	return f
}

// call makes the Apinizer call once the breaker admits it and one of the
// Concurrency call slots is free, bounded by the job timeout. While the
// breaker is open, or half-open with its trial call under way, the job
// waits here, kept alive.
func (w *Worker) call(ctx context.Context, d *delivery, call executor.Call) (executor.Response, error) {
	trial, err := w.breaker.admit(ctx)
	if err != nil {
		return executor.Response{}, fmt.Errorf("worker: waiting for Apinizer: %w: %w", err, executor.ErrRetryable)
	}
	if trial {
		d.logger().Info("trial call of the half-open circuit breaker")
		defer w.breaker.endTrial()
	}
	resp, err := w.callInSlot(ctx, d, call)
	// Observed before the trial ends, so that no second trial starts
	// before the first one's outcome is known.
	w.breaker.observe(err)
	return resp, err
}

// callInSlot makes the call in one of the Concurrency call slots.
func (w *Worker) callInSlot(ctx context.Context, d *delivery, call executor.Call) (executor.Response, error) {
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
			err = &panicError{value: p}
			d.logger().Error("panic while applying job", "panic", fmt.Sprint(p), "stack", stack())
		}
	}()
	return w.exec.Execute(ctx, d.job, call)
}
