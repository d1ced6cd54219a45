package executor

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// maxBodyBytes bounds how much of any response body is read. Apinizer's
// answers are a few kilobytes; anything larger is a proxy or a fault.
const maxBodyBytes = 1 << 20

// maxExcerptBytes bounds the part of an unstructured body kept as an error
// message.
const maxExcerptBytes = 200

// apiBody is the union of every response body Apinizer has documented:
// the {"success": ...} and {"status": "SUCCESS"|"FAILURE"} wrappers, the
// {"error", "error_description"} errors, and deployment results reported per
// environment or per gateway pod.
type apiBody struct {
	Success          *bool          `json:"success"`
	Status           string         `json:"status"`
	Error            string         `json:"error"`
	ErrorDescription string         `json:"error_description"`
	ResultMessage    string         `json:"resultMessage"`
	Message          string         `json:"message"`
	DeploymentResult *apiDeployment `json:"deploymentResult"`
}

// Values of the newer "status" wrapper.
const (
	statusSuccess = "SUCCESS"
	statusFailure = "FAILURE"
)

// parseResponse turns a response read in full into the call's result. A 2xx
// answer is a success only if its body says so; any other status is an
// *APIError whose class follows the status.
func parseResponse(status int, header http.Header, body []byte) (Response, error) {
	if status < 200 || status > 299 {
		return Response{}, parseError(status, header, body)
	}
	b, ok := decodeBody(body)
	if !ok {
		return Response{}, &APIError{StatusCode: status, Code: "invalid_response", Message: "unparseable success body: " + excerpt(body)}
	}
	switch {
	case b.Success != nil && !*b.Success, strings.EqualFold(b.Status, statusFailure):
		code := b.Error
		if code == "" {
			code = statusFailure
		}
		return Response{}, &APIError{StatusCode: status, Code: sanitize(code, maxCodeBytes), Message: b.message()}
	case b.Success == nil && !strings.EqualFold(b.Status, statusSuccess):
		return Response{}, &APIError{StatusCode: status, Code: "invalid_response", Message: "success body without success flag: " + excerpt(body)}
	}
	d := b.DeploymentResult.fold()
	if d != nil && !d.Success {
		return Response{Status: jobs.StatusPartial, Deployment: d}, nil
	}
	return Response{Status: jobs.StatusSucceeded, Deployment: d}, nil
}

// decodeBody decodes any JSON object. A field of an unexpected type (Spring's
// error pages carry a numeric "status") is skipped rather than failing the
// whole body, as json.Unmarshal fills the other fields either way.
func decodeBody(body []byte) (apiBody, bool) {
	var b apiBody
	err := json.Unmarshal(body, &b)
	var typeErr *json.UnmarshalTypeError
	return b, err == nil || errors.As(err, &typeErr)
}

// message is the human-readable part of a body, whichever variant it is.
func (b *apiBody) message() string {
	for _, m := range []string{b.ErrorDescription, b.ResultMessage, b.Message} {
		if m != "" {
			return clip(m)
		}
	}
	if b.DeploymentResult != nil {
		return clip(b.DeploymentResult.Message)
	}
	return ""
}

// clip is one of Apinizer's messages as a result keeps it: sanitized and
// cut to jobs.MaxMessageSize, marked when cut. A message can be as long as
// the body, and a result longer than NATS allows would fail on every
// delivery after the change was made.
func clip(m string) string { return jobs.Cut(sanitize(m, maxBodyBytes), jobs.MaxMessageSize) }

// parseError builds the APIError for a non-2xx response. Apinizer's JSON
// bodies give the code and message; anything else (an HTML page from a
// proxy, an empty body) is reported as "http_<status>" with a short excerpt.
func parseError(status int, header http.Header, body []byte) *APIError {
	e := &APIError{StatusCode: status}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		e.RetryAfter = retryAfter(header.Get("Retry-After"), time.Now())
	}
	if b, ok := decodeBody(body); ok {
		switch {
		case b.Error != "":
			e.Code, e.Message = sanitize(b.Error, maxCodeBytes), b.message()
		case strings.EqualFold(b.Status, statusFailure):
			e.Code, e.Message = statusFailure, b.message()
		}
		if e.Code != "" {
			if e.Message == "" {
				e.Message = http.StatusText(status)
			}
			return e
		}
	}
	e.Code = "http_" + strconv.Itoa(status)
	e.Message = excerpt(body)
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// retryAfter parses a Retry-After header, as delta-seconds or an HTTP-date
// relative to now. It returns zero for an absent, malformed or past value.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap far beyond any retry budget so the multiplication cannot
		// overflow.
		return time.Duration(min(secs, 365*24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// excerpt is a short, printable piece of an unstructured body for an error
// message: markup is dropped and whitespace collapsed, so that an HTML error
// page from a proxy reads as its text.
func excerpt(body []byte) string {
	if len(body) > 4*maxExcerptBytes {
		body = body[:4*maxExcerptBytes]
	}
	var text strings.Builder
	inTag := false
	for _, r := range strings.ToValidUTF8(string(body), "") {
		switch {
		case r == '<':
			inTag = true
			text.WriteByte(' ')
		case r == '>' && inTag:
			inTag = false
		case !inTag:
			text.WriteRune(r)
		}
	}
	return sanitize(text.String(), maxExcerptBytes)
}

// sanitize makes s safe to put in an error message or a log line: valid
// UTF-8, no control characters, whitespace collapsed, and at most max bytes
// without splitting a character.
// maxCodeBytes bounds an error code taken from a response: it ends up in
// results, dead letters and logs.
const maxCodeBytes = 128

func sanitize(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// resourceGone reports whether an Apinizer error message says that the
// resource a delete names does not exist, as opposed to its project. The
// message text is the only signal Apinizer gives, so this is the one place
// that reads it:
//
//	Certificate (name: my-certificate) is not found!   -> true for certificates
//	Key (name: my-key) is not found!                    -> true for keys
//	Credential (username: api-user) was not found!      -> true for credentials
//	Project(MyProject) was not found or user does not…  -> false
//
// It errs towards false: an unknown text is a failure, never a silent
// success.
func resourceGone(kind jobs.Kind, message string) bool {
	m := strings.ToLower(strings.TrimSpace(message))
	noun := string(kind) // "certificate", "key", "credential"
	rest, ok := strings.CutPrefix(m, noun)
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '(') {
		return false
	}
	return strings.Contains(rest, "not found")
}
