package jobs

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors say which rule a job broke, so that callers decide with
// errors.Is and never by message text. Every error Decode returns matches
// exactly one of them; errors from Validate match ErrRequired,
// ErrInvalidValue or ErrMustBeStated.
var (
	// ErrUnknownSubject: the message arrived on a subject that is not one of
	// Subjects.
	ErrUnknownSubject = errors.New("unknown subject")
	// ErrMalformed: the body is not valid UTF-8 or not a JSON object.
	ErrMalformed = errors.New("malformed job")
	// ErrTooLarge: the body is longer than MaxBodySize.
	ErrTooLarge = errors.New("job too large")
	// ErrRequired: a required field is missing or empty.
	ErrRequired = errors.New("required")
	// ErrInvalidValue: a field is present but breaks a rule: a name that
	// would change the request path, a value outside an enum, a limit
	// exceeded, a PEM file that is not only certificates.
	ErrInvalidValue = errors.New("invalid value")
	// ErrIDMismatch: the body's jobId and the Nats-Msg-Id header are both set
	// and differ, so JetStream would deduplicate on a different key than the
	// worker.
	ErrIDMismatch = errors.New("id mismatch")
	// ErrUnknownField: the body has a member the job type does not
	// document, or writes a documented one in another letter case.
	// encoding/json would ignore the first and take the second for the
	// field, so a typo would silently change the job.
	ErrUnknownField = errors.New("unknown field")
	// ErrDuplicateField: an object in the body names a member twice.
	// encoding/json would keep the last copy without a word.
	ErrDuplicateField = errors.New("duplicate field")
	// ErrMustBeStated: an optional Apinizer parameter whose default is
	// unsafe for the job is absent. Apinizer would accept the call, so it
	// is not a missing required field: the job itself is refused.
	ErrMustBeStated = errors.New("must be stated")
	// ErrSecretInClear: SECRET_KEY or PRIVATE_KEY material (or a private
	// key in a PUBLIC_KEY's content) in clear. The job is refused with no
	// call; the stream it was published to still holds the material, and
	// the operator must purge it.
	ErrSecretInClear = errors.New("secret material in clear")
)

// FieldError is a rule broken by one field. Err is ErrRequired,
// ErrInvalidValue, ErrIDMismatch, ErrUnknownField, ErrDuplicateField or
// ErrMustBeStated.
type FieldError struct {
	// Field is the JSON name of the field, such as "certificateName". For
	// ErrUnknownField and ErrDuplicateField it is the name as the body
	// wrote it (below the top level, its path: "list/0/name"); messages
	// quote it when it is not a plain name.
	Field string
	// Err is the sentinel the failure matches.
	Err error
	// Detail says what is wrong with the value. It never contains PEM
	// content; user-supplied values appear only quoted and truncated.
	Detail string
}

func (e *FieldError) Error() string { return "jobs: " + e.text() }

// Unwrap returns Err, so that errors.Is(err, ErrRequired) works.
func (e *FieldError) Unwrap() error { return e.Err }

// text is the message without the package prefix, for embedding in a
// DecodeError.
func (e *FieldError) text() string {
	s := fieldName(e.Field) + ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// DecodeError is how Decode reports every failure. It carries what the worker
// needs to publish a failed result for a job it cannot run.
type DecodeError struct {
	// Subject is the subject the message arrived on.
	Subject string
	// JobID is the job's id if the body or the Nats-Msg-Id header carried one
	// that is itself valid (the body's wins), and empty otherwise.
	JobID string
	// Err is a *FieldError or an error wrapping ErrUnknownSubject,
	// ErrMalformed or ErrTooLarge.
	Err error
}

func (e *DecodeError) Error() string {
	msg := e.Err.Error()
	if fe, ok := e.Err.(*FieldError); ok {
		msg = fe.text()
	}
	if e.JobID == "" {
		return fmt.Sprintf("jobs: decode %s: %s", quote(e.Subject), msg)
	}
	return fmt.Sprintf("jobs: decode %s job %s: %s", quote(e.Subject), quote(e.JobID), msg)
}

// Unwrap returns Err, so that errors.Is and errors.As see the sentinel and the
// *FieldError.
func (e *DecodeError) Unwrap() error { return e.Err }

// Code returns a stable snake_case code for the failure, suitable for the
// error.code of a failed result and for metric labels:
//
//	unknown_subject  ErrUnknownSubject
//	malformed_job    ErrMalformed
//	job_too_large    ErrTooLarge
//	missing_field    ErrRequired
//	invalid_field    ErrInvalidValue
//	job_id_mismatch  ErrIDMismatch
//	invalid_job      ErrUnknownField, ErrDuplicateField, ErrMustBeStated, ErrProjectMismatch
//	secret_in_clear  ErrSecretInClear
//
// A DecodeError built outside this package around some other error reports
// malformed_job.
func (e *DecodeError) Code() string {
	switch {
	case errors.Is(e.Err, ErrUnknownSubject):
		return "unknown_subject"
	case errors.Is(e.Err, ErrSecretInClear):
		return "secret_in_clear"
	case errors.Is(e.Err, ErrTooLarge):
		return "job_too_large"
	case errors.Is(e.Err, ErrRequired):
		return "missing_field"
	case errors.Is(e.Err, ErrInvalidValue):
		return "invalid_field"
	case errors.Is(e.Err, ErrIDMismatch):
		return "job_id_mismatch"
	case errors.Is(e.Err, ErrUnknownField), errors.Is(e.Err, ErrDuplicateField), errors.Is(e.Err, ErrMustBeStated), errors.Is(e.Err, ErrProjectMismatch):
		return "invalid_job"
	default:
		return "malformed_job"
	}
}

// maxQuoted bounds how much of a user-supplied value an error message echoes,
// so that a hostile job cannot flood logs through its own error.
const maxQuoted = 64

// quote renders a user-supplied value for an error message: truncated to
// maxQuoted bytes on a rune boundary, then quoted with %q so that control
// characters and invalid UTF-8 are escaped.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}

// fieldName renders a field name for a message: as it is when it is a plain
// name of at most maxQuoted bytes (every documented field is), quoted
// otherwise, since an unknown name is whatever the body sent.
func fieldName(s string) string {
	if s == "" || len(s) > maxQuoted {
		return quote(s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./", r)) {
			return quote(s)
		}
	}
	return s
}
