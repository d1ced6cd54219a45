package executor

import (
	"errors"
	"net/http"
	"strings"
)

// Stable error codes for results (docs/jobs.md, "Result error codes"). They
// are the same whichever revision of Apinizer answered: APIError.StableCode
// maps Apinizer's status and message to them, here and nowhere else.
const (
	// CodeNotFound: the resource the job names does not exist.
	CodeNotFound = "not_found"
	// CodeAlreadyExists: a create met a resource (or alias) already in use,
	// and it is not the job's own earlier attempt.
	CodeAlreadyExists = "already_exists"
	// CodePermissionDenied: the token's user lacks the project permission.
	CodePermissionDenied = "permission_denied"
	// CodeProjectNotFound: the project does not exist or the user cannot
	// see it (the older revision says both at once).
	CodeProjectNotFound = "project_not_found"
	// CodeServerError: Apinizer (or a proxy before it) failed, 5xx or 408.
	CodeServerError = "server_error"
	// CodeRateLimited: Apinizer or a proxy answered 429.
	CodeRateLimited = "rate_limited"
	// CodeUnauthorized: the token was rejected (401). A job never fails
	// with it: the worker pauses instead.
	CodeUnauthorized = "unauthorized"
	// CodeBadRequest: Apinizer refused the request for another reason, such
	// as a validation message.
	CodeBadRequest = "bad_request"
	// CodeInvalidResponse: a 2xx answer that cannot be understood.
	CodeInvalidResponse = "invalid_response"
	// CodePreconditionFailed: a job's expectedThumbprint is not what
	// Apinizer serves; nothing was written. The worker's own refusal.
	CodePreconditionFailed = "precondition_failed"
	// CodeUnknownEnvironment: a certificate.apply names an environment the
	// project does not have; nothing was written. The worker's own
	// refusal.
	CodeUnknownEnvironment = "unknown_environment"
	// CodeInvalidRequest: the job cannot be sent as an HTTP request (a
	// *RequestError); nothing reached Apinizer.
	CodeInvalidRequest = "invalid_request"
)

// ErrUnauthorized matches every error saying that Apinizer rejected the
// worker's credentials: a 401 from an APIOps call, or the token endpoint
// refusing the client credentials. It is never the job's fault; such errors
// also match ErrPermanent (repeating the call with the same token cannot
// help), so a caller that pauses on them must test ErrUnauthorized first.
var ErrUnauthorized = errors.New("apinizer rejected the credentials")

// Reasons for a rejected credential, as AuthReason reports them. They are
// bounded, for a metric label.
const (
	AuthExpired              = "expired"
	AuthInvalid              = "invalid"
	AuthMissing              = "missing"
	AuthBadClientCredentials = "bad_client_credentials"
)

// AuthReason returns why err says the credentials were rejected (one of the
// Auth constants), or "" when err does not match ErrUnauthorized.
func AuthReason(err error) string {
	if !errors.Is(err, ErrUnauthorized) {
		return ""
	}
	var (
		tokErr  *TokenError
		credErr *CredentialsError
	)
	if errors.As(err, &tokErr) {
		return AuthBadClientCredentials
	}
	if errors.As(err, &credErr) {
		return AuthMissing
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return AuthInvalid
	}
	m := strings.ToLower(apiErr.Message)
	switch {
	case strings.Contains(m, "was expired") || strings.Contains(m, "has expired") || strings.Contains(m, "token expired"):
		return AuthExpired
	case strings.Contains(m, "empty key") || strings.Contains(m, "missing"):
		return AuthMissing
	}
	return AuthInvalid
}

// StableCode is the project's stable code for this error (one of the Code
// constants). Apinizer's message text is the only signal it gives for most
// refusals, in two revisions:
//
//	Certificate (name: c) is not found!             not_found
//	Credential (username: u) was not found!         not_found
//	Credential (username: u) has no public key …    not_found
//	Credential (username: u) has no certificate …   not_found
//	Certificate (name: c) is already exist!         already_exists
//	Certificate (name: c) already exists!           already_exists
//	Alias (a) is already used for another …         already_exists
//	User does not have required permission for …    permission_denied
//	Project(P) was not found or user does not …     project_not_found
//	Project (P) is not found!                       project_not_found
//
// A status that says more than any text wins: 401, 429, 408 and 5xx. The
// worker's own refusals, made before any write (StatusCode 0), keep their
// code.
func (e *APIError) StableCode() string {
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		return CodeUnauthorized
	case e.StatusCode == http.StatusTooManyRequests:
		return CodeRateLimited
	case retryableStatus(e.StatusCode):
		return CodeServerError
	case e.Code == CodeInvalidResponse:
		return CodeInvalidResponse
	case e.StatusCode == 0 && e.Code != "":
		// A refusal of the worker's own (precondition_failed,
		// unknown_environment): no HTTP answer to read.
		return e.Code
	}
	m := strings.ToLower(strings.TrimSpace(e.Message))
	switch {
	case strings.Contains(m, "does not have required permission") || strings.Contains(m, "does not have permission"):
		return CodePermissionDenied
	case strings.HasPrefix(m, "project") && strings.Contains(m, "not found"):
		return CodeProjectNotFound
	case strings.Contains(m, "not found") || noPublicKey(m) || noCertificate(m):
		return CodeNotFound
	case strings.Contains(m, "already exist") || strings.Contains(m, "already used"):
		return CodeAlreadyExists
	case e.StatusCode == http.StatusForbidden:
		return CodePermissionDenied
	case e.StatusCode == http.StatusNotFound:
		return CodeNotFound
	}
	return CodeBadRequest
}

// noPublicKey reports whether a lower-cased message says a credential has no
// public key assigned: the current revision refuses a public key removal
// with 400 then.
func noPublicKey(m string) bool {
	return strings.Contains(m, "public key") &&
		(strings.Contains(m, "no public key") || strings.Contains(m, "not assigned") || strings.Contains(m, "must have"))
}

// noCertificate reports whether a lower-cased message says a credential has
// no certificate assigned, the refusal of a certificate removal then.
func noCertificate(m string) bool {
	return strings.Contains(m, "no certificate assigned") || (strings.HasPrefix(m, "credential") && strings.Contains(m, "certificate") && strings.Contains(m, "not assigned"))
}
