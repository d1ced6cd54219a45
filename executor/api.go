// Package executor is a typed client for Apinizer's APIOps endpoints: it
// turns a validated job into exactly the HTTP request Apinizer documents,
// retries transient failures with exponential backoff, and classifies the
// outcome so that callers can decide a job's fate with errors.Is and
// errors.As.
//
// The package knows nothing of NATS.
package executor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Outcome classes. Every error Execute returns matches exactly one of
// ErrPermanent and ErrRetryable under errors.Is; ErrUnauthorized (codes.go)
// picks out the permanent ones that are the credentials' fault, not the
// job's.
var (
	// ErrPermanent: Apinizer refused the change (400, 401, 403, 404, 409,
	// 422, or a response that cannot be understood); repeating the call
	// cannot help.
	ErrPermanent = errors.New("permanent failure")
	// ErrRetryable: the call may succeed later (network error, timeout, 408,
	// 429, 5xx).
	ErrRetryable = errors.New("retryable failure")
)

// APIError is an error response from Apinizer (or from a proxy in front of
// it). It matches ErrPermanent or ErrRetryable under errors.Is according to
// its status code.
type APIError struct {
	// StatusCode is the HTTP status, or 0 for a refusal the worker makes
	// itself on what it read (precondition_failed, unknown_environment).
	StatusCode int
	// Code is Apinizer's "error" field ("bad_request", "unauthorized_client",
	// "not_found"), "FAILURE" for the newer {"status":"FAILURE"} bodies, or
	// "http_<status>" when the body carried none (an HTML page from a proxy).
	Code string
	// Message is Apinizer's error_description or resultMessage, or a short
	// excerpt of an unstructured body.
	Message string
	// RetryAfter is the delay a 429 or 503 asked for, zero if none.
	RetryAfter time.Duration
}

// TransportError is a failure to get any HTTP response: connection refused,
// reset, TLS failure, or the per-attempt timeout. It matches ErrRetryable.
type TransportError struct {
	Err error
}

// Response is what a call achieved. Execute returns it with or without an
// error, so that Attempts is always known.
type Response struct {
	// Status is jobs.StatusSucceeded or jobs.StatusPartial when the error is
	// nil (or jobs.StatusUnchanged, for a certificate.apply that wrote
	// nothing), and empty otherwise.
	Status jobs.Status
	// Deployment is Apinizer's deployment report, folded to one entry per
	// environment. Nil when the error is not nil, and for a delete that was
	// already gone.
	Deployment *jobs.DeploymentResult
	// Attempts is the number of HTTP attempts this call made.
	Attempts int
	// AlreadyGone is set when a delete answered "not found" after an earlier
	// attempt of the same job may have reached Apinizer, or a public-key
	// removal answered "no public key assigned": the state the job asks for
	// holds.
	AlreadyGone bool
	// AlreadyApplied is set when an earlier attempt may have reached
	// Apinizer and the certificate read back serves the job's certificate
	// (same SHA-1 thumbprint, and alias) in every environment of the job: a
	// certificate.create answered "already exists", or a certificate.update
	// about to be repeated, which is then not sent. Deployment is nil.
	AlreadyApplied bool
	// Live is what Apinizer serves afterwards in each environment of a
	// certificate job that wrote (read back after the write) or found its
	// certificate served already; nil for other jobs and when the
	// read-back failed. An environment whose live thumbprint is not the
	// job's counts as a failed environment of Deployment.
	Live []jobs.LiveCertificate
}

// Call carries the per-delivery options of one Execute.
type Call struct {
	// PriorAttempts is the number of HTTP attempts earlier deliveries of the
	// same job made. When it is positive, a delete answered "not found" is
	// reported as AlreadyGone, and a certificate.create answered "already
	// exists" is read back (AlreadyApplied), instead of failing.
	PriorAttempts int
	// Header holds extra request headers, such as a W3C traceparent.
	Header http.Header
	// BeforeAttempt, if set, runs before every HTTP attempt with the job's
	// overall attempt number (PriorAttempts+1 for the first). An error stops
	// the call before the request is sent and is returned wrapped.
	BeforeAttempt func(ctx context.Context, attempt int) error
	// OnRetry, if set, runs after a retryable failure, before waiting wait.
	OnRetry func(attempt int, err error, wait time.Duration)
}

func (e *APIError) Error() string {
	if e.StatusCode == 0 {
		// The worker's own refusal, made on what Apinizer answered to a
		// read: there is no status to show.
		return fmt.Sprintf("executor: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("apinizer: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// Is makes an APIError match ErrRetryable when its status says the call may
// succeed later (408, 429, 5xx) and ErrPermanent otherwise, including a 2xx
// whose body reports a failure or cannot be understood.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRetryable:
		return retryableStatus(e.StatusCode)
	case ErrPermanent:
		return !retryableStatus(e.StatusCode)
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	}
	return false
}

// TokenError is the token endpoint (POST /apiops/auth/token) refusing the
// client credentials. It matches ErrUnauthorized and ErrPermanent; a token
// endpoint that cannot be reached or fails with 5xx is a TransportError
// instead.
type TokenError struct {
	// StatusCode is the token endpoint's HTTP status.
	StatusCode int
	// Message is its error_description or resultMessage.
	Message string
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("apinizer: token endpoint refused the client credentials: %d: %s", e.StatusCode, e.Message)
}

// Is makes a TokenError match ErrUnauthorized and ErrPermanent.
func (e *TokenError) Is(target error) bool {
	return target == ErrUnauthorized || target == ErrPermanent
}

// CredentialsError is the worker's own credentials being unusable before any
// request: the token source failed (a token file missing, unreadable or
// empty). Like a 401 it refuses every job alike, so it matches
// ErrUnauthorized (reason missing) and the caller pauses instead of spending
// the job's deliveries; it resumes once the token can be read again. Err
// never holds the token.
type CredentialsError struct {
	Err error
}

func (e *CredentialsError) Error() string { return "executor: reading the token: " + e.Err.Error() }

func (e *CredentialsError) Unwrap() error { return e.Err }

// Is makes a CredentialsError match ErrUnauthorized.
func (e *CredentialsError) Is(target error) bool { return target == ErrUnauthorized }

// retryableStatus reports whether a response with this status may succeed if
// the same request is sent again later.
func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

func (e *TransportError) Error() string { return "apinizer: transport: " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Is makes every TransportError match ErrRetryable: no response arrived, so
// the job has to be tried again.
func (e *TransportError) Is(target error) bool { return target == ErrRetryable }
