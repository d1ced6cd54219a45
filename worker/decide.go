package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
)

// maxRetryAfter caps the delay a Retry-After can ask for before a job is
// tried again.
const maxRetryAfter = 5 * time.Minute

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
	// ack: the job is final; its result is recorded and published, then the
	// message is acknowledged.
	ack action = iota
	// republish: an earlier delivery made the job final; its stored result
	// is published again, then the message is acknowledged.
	republish
	// retry: the message is handed back with NakWithDelay.
	retry
	// giveUp: the job is final and failed; it is dead-lettered, its result
	// recorded and published, then the message is terminated.
	giveUp
	// abandon: another worker owns the job now; this delivery is left alone.
	abandon
)

// fate is what becomes of one delivery. decide (and, before any call, the
// ledger) makes it; settle carries it out.
type fate struct {
	action action
	// delay, for retry, is the wait before the redelivery.
	delay time.Duration
	// reason is, for retry, the retries_total reason; for giveUp, why the
	// message is terminated.
	reason string
	// dlqReason, for giveUp, is the dead-letter reason.
	dlqReason string
	// outcome, for ack and giveUp, is how the job ended.
	outcome *outcome
	// stored, for republish, is the result an earlier delivery recorded.
	stored *jobs.Result
}

// outcome is how a job ended: the part of its result that decide knows.
type outcome struct {
	status     jobs.Status
	attempts   int
	deployment *jobs.DeploymentResult
	// live is what Apinizer serves after a certificate write, read back.
	live         []jobs.LiveCertificate
	err          *jobs.ResultError
	supersededBy string
}

// applied reports that the job took effect: a successful call ends
// succeeded or partial, or unchanged when Apinizer already served what it
// asked for. Each moves the resource's last-applied position, so that an
// older job arriving later ends superseded.
func (o *outcome) applied() bool {
	return o != nil && (o.status == jobs.StatusSucceeded || o.status == jobs.StatusPartial || o.status == jobs.StatusUnchanged)
}

func failed(attempts int, re *jobs.ResultError) *outcome {
	return &outcome{status: jobs.StatusFailed, attempts: attempts, err: re}
}

// attempt is what decide weighs: plain values, no message and no worker.
type attempt struct {
	// delivered is this delivery's number, from 1; maxDeliver the
	// consumer's limit (0 or less: none).
	delivered  uint64
	maxDeliver int
	// prior counts the Apinizer attempts of earlier deliveries.
	prior int
	// backoff is the usual delay before a redelivery.
	backoff time.Duration
	resp    executor.Response
	err     error
}

// decide is the one place where the outcome of an Apinizer call becomes the
// delivery's fate (the retry policy table in README.md).
func decide(a attempt) fate {
	attempts := a.prior + a.resp.Attempts
	var (
		apiErr  *executor.APIError
		panicEr *panicError
	)
	switch {
	case a.err == nil:
		return fate{action: ack, outcome: &outcome{status: a.resp.Status, attempts: attempts, deployment: a.resp.Deployment, live: a.resp.Live}}
	case errors.Is(a.err, ledger.ErrLost):
		return fate{action: abandon}
	case errors.As(a.err, &panicEr):
		re := &jobs.ResultError{Code: codePanic, Message: "the worker panicked while applying the job"}
		return fate{action: giveUp, reason: codePanic, dlqReason: dlq.ReasonPanic, outcome: failed(attempts, re)}
	case errors.Is(a.err, executor.ErrUnauthorized):
		// A refused token is the worker's outage, not the job's failure
		// (it also matches ErrPermanent): the job is handed back, whatever
		// its delivery count, to wait for credentials that work.
		return fate{action: retry, delay: a.backoff, reason: "auth"}
	case errors.Is(a.err, executor.ErrPermanent):
		re := resultError(a.err)
		return fate{action: giveUp, reason: re.Code, dlqReason: dlq.ReasonPermanent, outcome: failed(attempts, re)}
	case a.maxDeliver > 0 && a.delivered >= uint64(a.maxDeliver):
		re := resultError(a.err)
		re.Code, re.Message = codeRetriesExhausted, fmt.Sprintf("gave up after %d deliveries: %s", a.delivered, re.Message)
		return fate{action: giveUp, reason: codeRetriesExhausted, dlqReason: dlq.ReasonMaxDeliveries, outcome: failed(attempts, re)}
	default:
		delay := a.backoff
		if errors.As(a.err, &apiErr) && apiErr.RetryAfter > delay {
			// Honoured, but not to the point where a proxy's Retry-After
			// parks a job for days.
			delay = min(apiErr.RetryAfter, maxRetryAfter)
		}
		return fate{action: retry, delay: delay, reason: retryReason(a.err)}
	}
}

// invalidJob is the fate of a message that is not a valid job: it is never
// retried.
func invalidJob(err error) fate {
	code := "invalid_job"
	var de *jobs.DecodeError
	if errors.As(err, &de) {
		code = de.Code()
	}
	re := &jobs.ResultError{Code: code, Message: err.Error()}
	return fate{action: giveUp, reason: code, dlqReason: dlq.ReasonInvalid, outcome: failed(0, re)}
}

// panicked is the fate of a delivery whose handling panicked outside the
// Apinizer call.
func panicked() fate {
	re := &jobs.ResultError{Code: codePanic, Message: "the worker panicked while handling the job"}
	return fate{action: giveUp, reason: codePanic, dlqReason: dlq.ReasonPanic, outcome: failed(0, re)}
}

// busy is the fate of a job whose claim or resource lock failed: retried
// after the holder's lease (at most an ack wait) when another worker holds
// it, after the usual delay when the ledger failed.
func busy(err error, reason string, now time.Time, ackWait, backoff time.Duration) fate {
	var b *ledger.BusyError
	if errors.As(err, &b) {
		wait := max(b.Until.Sub(now), 0) + 250*time.Millisecond
		return fate{action: retry, delay: min(wait, ackWait), reason: reason}
	}
	return fate{action: retry, delay: backoff, reason: "ledger"}
}

// resultError describes a failed call for the result.
func resultError(err error) *jobs.ResultError {
	var (
		apiErr *executor.APIError
		trErr  *executor.TransportError
		reqErr *executor.RequestError
	)
	switch {
	case errors.As(err, &apiErr):
		return &jobs.ResultError{
			Code: apiErr.StableCode(), ApinizerError: apiErr.Code, Message: apiErr.Message,
			HTTPStatus: apiErr.StatusCode, Retryable: errors.Is(err, executor.ErrRetryable),
		}
	case errors.As(err, &reqErr):
		return &jobs.ResultError{Code: reqErr.Code(), Message: reqErr.Error()}
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
	case errors.Is(err, executor.ErrUnauthorized):
		return "auth"
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
