package worker

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
)

// usualDelay is the usual redelivery delay the decide tests pass.
const usualDelay = 4 * time.Second

// failedAttempt is a delivery (the 2nd of 5, after 3 earlier attempts) whose
// call of 2 attempts ended in err.
func failedAttempt(err error) attempt {
	return attempt{delivered: 2, maxDeliver: 5, prior: 3, backoff: usualDelay, resp: executor.Response{Attempts: 2}, err: err}
}

func apiError(status int, retryAfter time.Duration) error {
	return fmt.Errorf("call: %w", &executor.APIError{StatusCode: status, Code: fmt.Sprintf("http_%d", status), Message: "refused", RetryAfter: retryAfter})
}

func transportError() error {
	return &executor.TransportError{Err: syscall.ECONNREFUSED}
}

// givenUp is the fate of a failed job: dead-lettered for dlqReason, its
// result failed with re after attempts.
func givenUp(reason, dlqReason string, attempts int, re *jobs.ResultError) fate {
	return fate{action: giveUp, reason: reason, dlqReason: dlqReason, outcome: &outcome{status: jobs.StatusFailed, attempts: attempts, err: re}}
}

// TestDecideFollowsTheRetryPolicyTable has a case for each row of the retry
// policy table in README.md, in its order.
func TestDecideFollowsTheRetryPolicyTable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ackWait := 30 * time.Second
	tooLarge := &jobs.DecodeError{Subject: "apiops.key.create", Err: fmt.Errorf("body of 2 MiB: %w", jobs.ErrTooLarge)}
	tests := []struct {
		name string
		got  fate
		want fate
	}{
		// network error, timeout, 408, 5xx: retried in-process by the
		// executor, then handed back.
		{"a network error left after the in-process retries hands the job back after the usual delay",
			decide(failedAttempt(transportError())), fate{action: retry, delay: usualDelay, reason: "transport"}},
		{"a timeout hands the job back after the usual delay",
			decide(failedAttempt(fmt.Errorf("call: %w: %w", context.DeadlineExceeded, executor.ErrRetryable))), fate{action: retry, delay: usualDelay, reason: "timeout"}},
		{"a 408 hands the job back after the usual delay",
			decide(failedAttempt(apiError(408, 0))), fate{action: retry, delay: usualDelay, reason: "http_4xx"}},
		{"a 500 hands the job back after the usual delay",
			decide(failedAttempt(apiError(500, 0))), fate{action: retry, delay: usualDelay, reason: "http_5xx"}},
		// 429 or 503 with Retry-After.
		{"a 429 whose Retry-After is longer than the usual delay hands the job back after the Retry-After",
			decide(failedAttempt(apiError(429, time.Minute))), fate{action: retry, delay: time.Minute, reason: "http_429"}},
		{"a 503 whose Retry-After is longer than the usual delay hands the job back after the Retry-After",
			decide(failedAttempt(apiError(503, 90*time.Second))), fate{action: retry, delay: 90 * time.Second, reason: "http_5xx"}},
		{"a Retry-After shorter than the usual delay keeps the usual delay",
			decide(failedAttempt(apiError(429, time.Second))), fate{action: retry, delay: usualDelay, reason: "http_429"}},
		{"a Retry-After of days is capped at five minutes",
			decide(failedAttempt(apiError(429, 72*time.Hour))), fate{action: retry, delay: maxRetryAfter, reason: "http_429"}},
		// retry budget spent.
		{"a spent retry budget hands the job back after the growing delay of its delivery",
			decide(attempt{delivered: 4, maxDeliver: 5, backoff: 16 * time.Second, resp: executor.Response{Attempts: 6}, err: apiError(502, 0)}),
			fate{action: retry, delay: 16 * time.Second, reason: "http_5xx"}},
		// Apinizer down across jobs: the job waits in-process; if the wait
		// ends (shutdown), the delivery is handed back, not given up.
		{"an outage cut short by shutdown hands the job back and dead-letters nothing",
			decide(failedAttempt(transportError())), fate{action: retry, delay: usualDelay, reason: "transport"}},
		// another job holds the resource, or a dead worker's claim.
		{"a resource held by another job is retried once the holder's lease runs out",
			busy(&ledger.BusyError{Until: now.Add(10 * time.Second)}, "resource_busy", now, ackWait, usualDelay),
			fate{action: retry, delay: 10*time.Second + 250*time.Millisecond, reason: "resource_busy"}},
		{"a job claimed by a dead worker for long is retried after at most an ack wait",
			busy(&ledger.BusyError{Until: now.Add(time.Hour)}, "job_busy", now, ackWait, usualDelay),
			fate{action: retry, delay: ackWait, reason: "job_busy"}},
		{"a ledger that fails is retried after the usual delay",
			busy(errors.New("kv: timeout"), "job_busy", now, ackWait, usualDelay), fate{action: retry, delay: usualDelay, reason: "ledger"}},
		// 401: the worker's credentials refused; the job waits in-process
		// with every other; if the wait ends (shutdown), it is handed back.
		{"a 401 cut short by shutdown hands the job back and dead-letters nothing",
			decide(failedAttempt(apiError(401, 0))), fate{action: retry, delay: usualDelay, reason: "auth"}},
		{"a 401 on the last delivery still hands the job back",
			decide(attempt{delivered: 5, maxDeliver: 5, backoff: usualDelay, err: apiError(401, 0)}), fate{action: retry, delay: usualDelay, reason: "auth"}},
		// 400, 403, 404, 409, 422, invalid job, panic: given up at once,
		// with the stable code and Apinizer's own beside it.
		{"a 400 gives up at once with Apinizer's error",
			decide(failedAttempt(apiError(400, 0))),
			givenUp("bad_request", dlq.ReasonPermanent, 5, &jobs.ResultError{Code: "bad_request", ApinizerError: "http_400", Message: "refused", HTTPStatus: 400})},
		{"a 403 gives up at once", decide(failedAttempt(apiError(403, 0))),
			givenUp("permission_denied", dlq.ReasonPermanent, 5, &jobs.ResultError{Code: "permission_denied", ApinizerError: "http_403", Message: "refused", HTTPStatus: 403})},
		{"a 404 gives up at once", decide(failedAttempt(apiError(404, 0))),
			givenUp("not_found", dlq.ReasonPermanent, 5, &jobs.ResultError{Code: "not_found", ApinizerError: "http_404", Message: "refused", HTTPStatus: 404})},
		{"a 409 gives up at once", decide(failedAttempt(apiError(409, 0))),
			givenUp("bad_request", dlq.ReasonPermanent, 5, &jobs.ResultError{Code: "bad_request", ApinizerError: "http_409", Message: "refused", HTTPStatus: 409})},
		{"a 422 gives up at once", decide(failedAttempt(apiError(422, 0))),
			givenUp("bad_request", dlq.ReasonPermanent, 5, &jobs.ResultError{Code: "bad_request", ApinizerError: "http_422", Message: "refused", HTTPStatus: 422})},
		{"an invalid job gives up at once with the decoder's code",
			invalidJob(tooLarge),
			givenUp("job_too_large", dlq.ReasonInvalid, 0, &jobs.ResultError{Code: "job_too_large", Message: tooLarge.Error()})},
		{"a panic during the call gives up at once",
			decide(failedAttempt(&panicError{value: "boom"})),
			givenUp(codePanic, dlq.ReasonPanic, 5, &jobs.ResultError{Code: codePanic, Message: "the worker panicked while applying the job"})},
		{"a panic outside the call gives up at once",
			panicked(), givenUp(codePanic, dlq.ReasonPanic, 0, &jobs.ResultError{Code: codePanic, Message: "the worker panicked while handling the job"})},
		// last delivery still failing.
		{"a retryable failure on the last delivery gives up as retries exhausted",
			decide(attempt{delivered: 5, maxDeliver: 5, prior: 8, backoff: usualDelay, resp: executor.Response{Attempts: 2}, err: apiError(503, 0)}),
			givenUp(codeRetriesExhausted, dlq.ReasonMaxDeliveries, 10, &jobs.ResultError{Code: codeRetriesExhausted, ApinizerError: "http_503", Message: "gave up after 5 deliveries: refused", HTTPStatus: 503, Retryable: true})},
		// a job whose every delivery killed its worker.
		{"a job the server ran out of deliveries for fails as retries exhausted",
			stranded(advisory{Deliveries: 5}),
			givenUp(codeRetriesExhausted, dlq.ReasonMaxDeliveries, 0, &jobs.ResultError{Code: codeRetriesExhausted, Message: "the server gave up after 5 deliveries, none of which a worker finished", Retryable: true})},
		{"a job terminated without a result fails as terminated",
			stranded(advisory{Type: terminatedAdvisory, Reason: "by the operator"}),
			givenUp("terminated", dlq.ReasonTerminated, 0, &jobs.ResultError{Code: "terminated", Message: "the job was terminated without a result: by the operator", Retryable: true})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, tc.got, cmp.AllowUnexported(fate{}, outcome{})); diff != "" {
				t.Errorf("fate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideOutsideTheRetryPolicyTable(t *testing.T) {
	t.Parallel()
	dep := &jobs.DeploymentResult{}
	tests := []struct {
		name string
		in   attempt
		want fate
	}{
		{"a call that succeeds acks with every attempt counted",
			attempt{delivered: 3, maxDeliver: 5, prior: 4, resp: executor.Response{Status: jobs.StatusSucceeded, Attempts: 1, Deployment: dep}},
			fate{action: ack, outcome: &outcome{status: jobs.StatusSucceeded, attempts: 5, deployment: dep}}},
		{"a partial deployment acks as partial",
			attempt{delivered: 1, maxDeliver: 5, resp: executor.Response{Status: jobs.StatusPartial, Attempts: 1, Deployment: dep}},
			fate{action: ack, outcome: &outcome{status: jobs.StatusPartial, attempts: 1, deployment: dep}}},
		{"an apply that finds its certificate live acks as unchanged, with what is live",
			attempt{delivered: 1, maxDeliver: 5, resp: executor.Response{Status: jobs.StatusUnchanged, Attempts: 1, Live: []jobs.LiveCertificate{{EnvironmentName: "production"}}}},
			fate{action: ack, outcome: &outcome{status: jobs.StatusUnchanged, attempts: 1, live: []jobs.LiveCertificate{{EnvironmentName: "production"}}}}},
		{"a success on the last delivery still acks",
			attempt{delivered: 5, maxDeliver: 5, resp: executor.Response{Status: jobs.StatusSucceeded, Attempts: 1}},
			fate{action: ack, outcome: &outcome{status: jobs.StatusSucceeded, attempts: 1}}},
		{"a claim lost to another worker abandons the delivery",
			failedAttempt(fmt.Errorf("before attempt: %w", ledger.ErrLost)), fate{action: abandon}},
		{"a consumer without a delivery limit never gives a retryable failure up",
			attempt{delivered: 1000, maxDeliver: -1, backoff: usualDelay, err: transportError()},
			fate{action: retry, delay: usualDelay, reason: "transport"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, decide(tc.in), cmp.AllowUnexported(fate{}, outcome{})); diff != "" {
				t.Errorf("fate (-want +got):\n%s", diff)
			}
		})
	}
}
