package executor

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/apiops-worker/apiops-worker/tracecontext"
)

// RequestError is a job that cannot be turned into an HTTP request: a path
// parameter that would change the path, or an extra header the HTTP client
// would refuse to send. Nothing was sent. It is the job's fault, never an
// outage: it matches ErrPermanent, and its stable code is
// CodeInvalidRequest, or for key material that cannot be sent
// CodeSecretInClear or CodeUndecryptable.
type RequestError struct {
	Err  error
	code string
}

func (e *RequestError) Error() string { return "executor: invalid request: " + e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// Is makes a RequestError match ErrPermanent: the same job builds the same
// request every time.
func (e *RequestError) Is(target error) bool { return target == ErrPermanent }

// Code is the stable code of the failed result.
func (e *RequestError) Code() string {
	if e.code != "" {
		return e.code
	}
	return CodeInvalidRequest
}

// errBadToken is a token that cannot be sent in a header: a control
// character, such as the newline of a token file written by hand. The
// credentials are at fault, not the job, so it matches ErrUnauthorized and
// the caller pauses until the token is fixed. The token is not quoted.
var errBadToken = fmt.Errorf("executor: the token holds a character a header cannot carry: %w: %w", ErrUnauthorized, ErrPermanent)

// extraHeader checks the caller's extra headers once per call and returns
// the ones to send. A malformed traceparent is dropped, as tracing must
// never fail a job; any other name or value the HTTP client would refuse is
// a *RequestError, found here, before any attempt is counted, rather than by
// the transport, whose error would look like an outage.
func extraHeader(extra http.Header) (http.Header, error) {
	if len(extra) == 0 {
		return nil, nil
	}
	out := make(http.Header, len(extra))
	for k, vs := range extra {
		if http.CanonicalHeaderKey(k) == http.CanonicalHeaderKey(tracecontext.Header) {
			for _, v := range vs {
				if tp, ok := tracecontext.Parse(v); ok {
					out.Add(tracecontext.Header, tp)
				}
			}
			continue
		}
		if !validHeaderName(k) {
			return nil, &RequestError{Err: fmt.Errorf("header name %q is not a token", sanitize(k, maxCodeBytes))}
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return nil, &RequestError{Err: fmt.Errorf("header %s holds a control character", sanitize(k, maxCodeBytes))}
			}
			out.Add(k, v)
		}
	}
	return out, nil
}

// validHeaderName and validHeaderValue are the checks net/http's transport
// applies before sending (golang.org/x/net/http/httpguts, RFC 9110 section
// 5): a name is a non-empty token, a value has no control character but
// horizontal tab.
func validHeaderName(k string) bool {
	const tchar = "!#$%&'*+-.^_`|~"
	for i := range len(k) {
		c := k[i]
		alnum := ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		if !alnum && !strings.ContainsRune(tchar, rune(c)) {
			return false
		}
	}
	return k != ""
}

func validHeaderValue(v string) bool {
	for i := range len(v) {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
