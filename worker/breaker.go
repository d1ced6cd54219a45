package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/metrics"
)

// breakerState is the circuit breaker's state; the values are those of the
// apiops_circuit_breaker_state metric.
type breakerState int

const (
	closed   breakerState = 0
	halfOpen breakerState = 1
	open     breakerState = 2
)

func (s breakerState) String() string {
	switch s {
	case closed:
		return "closed"
	case halfOpen:
		return "half-open"
	default:
		return "open"
	}
}

// breaker notices an Apinizer outage across jobs: after threshold outage
// failures in a row it opens, the worker stops taking jobs, and jobs in
// flight wait for it to close instead of spending their deliveries.
//
// It closes only on a real call's success: a probe that answers makes it
// half-open, which lets one job's call through (the trial, admit); the
// trial's answer closes it, its outage failure opens it again. A probe is a
// read: in a half outage (reads answer, writes hang or fail) it would close
// the breaker over and over, each time spending the deliveries of the jobs
// let through.
//
// A 401 opens it at once: Apinizer refusing the worker's token refuses every
// job alike, so it is the worker's outage, never a job's failure. A probe
// that Apinizer accepts (the token works again) makes it half-open.
type breaker struct {
	threshold int
	log       *slog.Logger
	metrics   *metrics.Metrics

	mu       sync.Mutex
	state    breakerState
	failures int
	// cause says why the breaker last opened, for /readyz and the logs.
	cause string
	// trial is set while the half-open breaker's one call is in flight.
	trial bool
	// changed is closed and replaced on every state change, waking waiters.
	changed chan struct{}
}

func newBreaker(threshold int, log *slog.Logger, m *metrics.Metrics) *breaker {
	m.BreakerState(int(closed))
	return &breaker{threshold: threshold, log: log, metrics: m, changed: make(chan struct{})}
}

// observe feeds the outcome of an Apinizer call to the breaker.
func (b *breaker) observe(err error) {
	var reqErr *executor.RequestError
	if errors.As(err, &reqErr) {
		return // nothing was sent: it says nothing about Apinizer
	}
	if isOutage(err) {
		b.failure(err)
	} else if err == nil || errors.Is(err, executor.ErrPermanent) || errors.Is(err, executor.ErrRetryable) {
		// Any answer, even a refusal or a 429, shows Apinizer is there.
		b.success()
	}
}

// failure counts an outage failure: a rejected token opens the breaker at
// once, anything else after threshold failures in a row.
func (b *breaker) failure(err error) {
	rejected := errors.Is(err, executor.ErrUnauthorized)
	if rejected {
		b.metrics.AuthFailure(executor.AuthReason(err))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	b.cause = "Apinizer unreachable"
	if rejected {
		b.cause = "Apinizer rejects the worker's credentials (" + executor.AuthReason(err) + ")"
	}
	if b.state != open && (rejected || b.failures >= b.threshold || b.state == halfOpen) {
		b.set(open)
	}
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
	if b.state != closed {
		b.set(closed)
	}
}

// probeAnswered moves an open breaker to half-open: the next call is let
// through as the trial.
func (b *breaker) probeAnswered() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == open {
		b.set(halfOpen)
	}
}

// admit waits until an Apinizer call may be made: the breaker is closed, or
// half-open with no trial in flight, and then this call is the trial. A
// trial is ended with endTrial once its outcome has been observed.
func (b *breaker) admit(ctx context.Context) (trial bool, err error) {
	for {
		b.mu.Lock()
		switch {
		case b.state == closed:
			b.mu.Unlock()
			return false, nil
		case b.state == halfOpen && !b.trial:
			b.trial = true
			b.mu.Unlock()
			return true, nil
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-changed:
		}
	}
}

// endTrial ends the trial call; if its outcome changed nothing (it was
// cancelled, or failed for a reason that says nothing of Apinizer), the
// next call waiting is let through as the trial.
func (b *breaker) endTrial() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	b.notify()
}

// set changes the state; callers hold b.mu.
func (b *breaker) set(s breakerState) {
	if s == open {
		b.log.Warn("Apinizer circuit breaker open", "from", b.state.String(), "consecutive_failures", b.failures, "cause", b.cause)
	} else {
		b.log.Warn("Apinizer circuit breaker "+s.String(), "from", b.state.String(), "consecutive_failures", b.failures)
	}
	b.state = s
	b.metrics.BreakerState(int(s))
	b.notify()
}

// notify wakes the waiters; callers hold b.mu.
func (b *breaker) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// openCause returns why the breaker is open, or "" while it is closed.
func (b *breaker) openCause() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == closed {
		return ""
	}
	return b.cause
}

// current returns the state and a channel closed at its next change.
func (b *breaker) current() (breakerState, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.changed
}

// waitFor returns once the breaker is in state want, or ctx's error.
func (b *breaker) waitFor(ctx context.Context, want breakerState) error {
	for {
		s, changed := b.current()
		if s == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// isOutage reports a failure that says Apinizer is not there for any job:
// no answer, a server error, or the worker's token refused (401). A 429 is an
// answer: Apinizer is up and asks to slow down.
func isOutage(err error) bool {
	var (
		apiErr *executor.APIError
		trErr  *executor.TransportError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, executor.ErrUnauthorized):
		return true
	case errors.As(err, &trErr):
		return true
	case errors.As(err, &apiErr):
		return apiErr.StatusCode >= 500
	}
	return false
}

// superviseBreaker, each time the breaker opens, pauses the jobs consumer
// (so every replica stops, not only this one) and probes Apinizer with
// backoff until it answers; then it makes the breaker half-open, so that one
// real call decides, and resumes the consumer.
func (w *Worker) superviseBreaker(ctx context.Context) {
	for {
		if err := w.breaker.waitFor(ctx, open); err != nil {
			return
		}
		w.pauseConsumer(ctx)
		bo := backoff.NewExponentialBackOff()
		// Probes are one cheap GET: capping their interval at 5s keeps the
		// time between Apinizer's return and the worker's short.
		bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = w.cfg.ProbeInterval, max(w.cfg.ProbeInterval, 5*time.Second), 0
		var lastAuthLog time.Time
		for {
			if !sleep(ctx, bo.NextBackOff()) {
				return
			}
			err := w.exec.Probe(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				w.breaker.probeAnswered()
				break
			}
			w.breaker.failure(err)
			if !errors.Is(err, executor.ErrUnauthorized) {
				w.log.Info("Apinizer still unreachable", "err", err)
			} else if time.Since(lastAuthLog) >= authLogEvery {
				// A refused token does not mend by itself unless a token
				// file or the client credentials change: say so, but not
				// at every probe.
				lastAuthLog = time.Now()
				w.log.Warn("Apinizer rejects the worker's credentials; jobs wait, none fails: rotate the token file or fix the client credentials",
					"reason", executor.AuthReason(err), "err", err)
			}
			w.pauseConsumer(ctx)
		}
		w.resumeConsumer(ctx)
	}
}

// authLogEvery is how often a worker paused by a refused token says so.
const authLogEvery = time.Minute

// pauseFor is how long one pause of the consumer lasts; the supervisor
// renews it while the outage goes on, and it lapses by itself if this worker
// dies meanwhile.
const pauseFor = time.Minute

func (w *Worker) pauseConsumer(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.js.PauseConsumer(ctx, w.stream, w.consumer, time.Now().Add(pauseFor)); err != nil {
		// Older servers cannot pause: this replica still stops pulling.
		w.log.Warn("could not pause the jobs consumer", "err", err)
	}
}

func (w *Worker) resumeConsumer(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.js.ResumeConsumer(ctx, w.stream, w.consumer); err != nil {
		w.log.Warn("could not resume the jobs consumer", "err", err)
	}
}
