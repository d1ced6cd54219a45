package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// responseSeeds are Apinizer's documented body variants and the ways a proxy
// or a broken server answers instead.
func responseSeeds() []string {
	nested := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	return []string{
		// success, classic and "status" wrappers
		`{"success": true}`,
		`{"status": "SUCCESS"}`,
		`{"success": true, "deploymentResult": {"success": true, "message": "Deployment completed successfully",
			"environmentResults": [{"environmentName": "production", "success": true, "message": "Deployed successfully"},
			{"environmentName": "staging", "success": true, "message": "Deployed successfully"}]}}`,
		`{"status": "SUCCESS", "deploymentResult": {"success": true, "message": "ok", "detailList": [
			{"envName": "production", "podName": "p0", "podIp": "10.0.0.1", "success": true, "detail": "Deployed", "responseTime": 12},
			{"envName": "production", "podName": "p1", "success": false, "detail": "timeout"},
			{"envName": "staging", "podName": "s0", "success": true, "detail": "Deployed"}]}}`,
		`{"success": true, "deploymentResult": {"success": false, "message": "some failed", "environmentResults": []}}`,
		`{"success": true, "deploymentResult": {"environmentResults": [{"environmentName": "", "success": false, "message": "a\u0000b\nc"}]}}`,
		`{"success": true, "deploymentResult": null}`,
		// errors, both styles
		`{"success": false, "error": "bad_request", "error_description": "Certificate is invalid"}`,
		`{"error": "unauthorized_client", "error_description": "Invalid token"}`,
		`{"error": "bad_request", "error_description": "Certificate (name: my-certificate) is not found!"}`,
		`{"status": "FAILURE", "resultMessage": "No permission"}`,
		`{"status": "failure", "resultMessage": "lower case"}`,
		`{"timestamp": "2026-11-23T10:00:00Z", "status": 404, "error": "Not Found", "path": "/apiops/x"}`,
		`{"error": "line\nbreak\u0007bell", "error_description": "` + strings.Repeat("d", 3000) + `"}`,
		// neither
		`{}`,
		`{"foo": 1}`,
		`null`,
		`[]`,
		`"a string"`,
		`<html>OK</html>`,
		"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>",
		"gateway\x00timeout\n" + strings.Repeat("x", 300),
		"\xff\xfe\xfd invalid UTF-8",
		``,
		// truncated JSON
		`{"success": true, "deploymentResult": {"environmentResults": [{"environmentName": "prod`,
		`{"error": "bad_req`,
		// huge numbers and wrong types
		`{"success": true, "status": 1e999999, "deploymentResult": {"success": 123456789012345678901234567890}}`,
		`{"success": 1, "error": 2, "resultMessage": [3]}`,
		// deeply nested arrays
		`{"success": true, "deploymentResult": {"environmentResults": ` + nested + `}}`,
		nested,
	}
}

// FuzzParseResponse checks that parseResponse never panics and keeps its
// promises for any status, Retry-After and body:
//   - a nil error comes only with a 2xx status and a Status of succeeded or
//     partial; partial always carries a failed Deployment, succeeded either
//     none or a wholly successful one; environments are reported once each,
//     with printable messages;
//   - every error is an *APIError for the status, matching exactly one of
//     ErrPermanent and ErrRetryable (retryable exactly for 408, 429 and 5xx),
//     with a non-empty Code, a printable Message of at most maxBodyBytes,
//     and a Retry-After only for 429 and 503, never negative.
func FuzzParseResponse(f *testing.F) {
	for _, body := range responseSeeds() {
		for _, status := range []int{200, 201, 204, 400, 401, 404, 429, 500, 503} {
			f.Add(status, "", []byte(body))
		}
	}
	f.Add(429, "120", []byte(`{"error": "too_many_requests"}`))
	f.Add(503, "Wed, 21 Oct 2099 07:28:00 GMT", []byte(""))
	f.Add(503, "-5", []byte(""))
	f.Add(503, "99999999999999999999", []byte(""))

	f.Fuzz(func(t *testing.T, status int, retryAfterHeader string, body []byte) {
		if status < 100 || status > 999 {
			t.Skip()
		}
		header := http.Header{}
		if retryAfterHeader != "" {
			header.Set("Retry-After", retryAfterHeader)
		}
		resp, err := parseResponse(status, header, body)
		if err != nil {
			checkParseError(t, status, resp, err)
			return
		}
		checkParseSuccess(t, status, resp)
	})
}

func checkParseSuccess(t *testing.T, status int, resp Response) {
	t.Helper()
	if status < 200 || status > 299 {
		t.Fatalf("status %d parsed as a success", status)
	}
	switch resp.Status {
	case jobs.StatusSucceeded:
		if d := resp.Deployment; d != nil {
			if !d.Success {
				t.Fatalf("succeeded with a failed deployment %+v", d)
			}
			for _, e := range d.EnvironmentResults {
				if !e.Success {
					t.Fatalf("succeeded with failed environment %q", e.EnvironmentName)
				}
			}
		}
	case jobs.StatusPartial:
		if resp.Deployment == nil || resp.Deployment.Success {
			t.Fatalf("partial without a failed deployment: %+v", resp.Deployment)
		}
	default:
		t.Fatalf("nil error with status %q, want succeeded or partial", resp.Status)
	}
	if resp.Attempts != 0 || resp.AlreadyGone {
		t.Fatalf("parseResponse set Attempts %d / AlreadyGone %t, which belong to Execute", resp.Attempts, resp.AlreadyGone)
	}
	d := resp.Deployment
	if d == nil {
		return
	}
	if d.EnvironmentResults == nil {
		t.Fatal("a deployment with a nil environment list (encodes as null)")
	}
	checkPrintable(t, "deployment message", d.Message, maxBodyBytes)
	seen := map[string]bool{}
	for _, e := range d.EnvironmentResults {
		if seen[e.EnvironmentName] {
			t.Fatalf("environment %q reported twice", e.EnvironmentName)
		}
		seen[e.EnvironmentName] = true
		if !utf8.ValidString(e.EnvironmentName) {
			t.Fatalf("environment name %q is not valid UTF-8", e.EnvironmentName)
		}
		// A failed environment joins its pods' details: bounded by the body,
		// not by maxBodyBytes.
		checkPrintable(t, "environment message", e.Message, 4*maxBodyBytes)
	}
	checkMessagesCut(t, d)
}

// checkMessagesCut fails if a message of d is longer than a result keeps.
func checkMessagesCut(t *testing.T, d *jobs.DeploymentResult) {
	t.Helper()
	texts := []string{d.Message}
	for _, e := range d.EnvironmentResults {
		texts = append(texts, e.Message)
		for _, p := range e.Pods {
			texts = append(texts, p.Detail)
		}
	}
	for _, m := range texts {
		if len(m) > jobs.MaxMessageSize {
			t.Fatalf("a message of %d bytes, more than jobs.MaxMessageSize", len(m))
		}
	}
}

func checkParseError(t *testing.T, status int, resp Response, err error) {
	t.Helper()
	if resp.Status != "" || resp.Deployment != nil {
		t.Fatalf("error %v with a non-empty response %+v", err, resp)
	}
	permanent, retryable := errors.Is(err, ErrPermanent), errors.Is(err, ErrRetryable)
	if permanent == retryable {
		t.Fatalf("error %v: permanent %t, retryable %t; want exactly one", err, permanent, retryable)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %T %v is not an *APIError", err, err)
	}
	if apiErr.StatusCode != status {
		t.Fatalf("APIError status %d, want %d", apiErr.StatusCode, status)
	}
	wantRetryable := status == 408 || status == 429 || status >= 500
	if retryable != wantRetryable {
		t.Fatalf("status %d: retryable %t, want %t", status, retryable, wantRetryable)
	}
	if apiErr.Code == "" {
		t.Fatal("APIError with an empty Code")
	}
	checkPrintable(t, "APIError.Message", apiErr.Message, maxBodyBytes)
	// Delta-seconds are capped at a year; an HTTP-date is not capped (see
	// docs/security.md, "Known gaps"), so only the sign is a guarantee.
	if apiErr.RetryAfter < 0 {
		t.Fatalf("negative RetryAfter %s", apiErr.RetryAfter)
	}
	if apiErr.RetryAfter != 0 && status != 429 && status != 503 {
		t.Fatalf("RetryAfter %s on a %d", apiErr.RetryAfter, status)
	}
}

// checkPrintable fails unless s is valid UTF-8 without control characters
// and at most limit bytes.
func checkPrintable(t *testing.T, what, s string, limit int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q is not valid UTF-8", what, s)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		t.Fatalf("%s holds control character %U at %d", what, []rune(s[i:])[0], i)
	}
	if len(s) > limit {
		t.Fatalf("%s is %d bytes, more than %d", what, len(s), limit)
	}
}

// TestAPIErrorCodeIsPrintableAndBounded is the property FuzzParseResponse
// would check of APIError.Code if parseResponse guaranteed it: Code comes
// verbatim from Apinizer's "error" field, so a broken or hostile server (or
// a proxy) decides what goes into the result's error.code, the DLQ record,
// the log line and the NATS term reason.
func TestAPIErrorCodeIsPrintableAndBounded(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"error": "line\nbreak\u0007bell", "error_description": "x"}`,
		`{"error": "` + strings.Repeat("c", 100000) + `"}`,
	} {
		for _, status := range []int{200, 400} {
			_, err := parseResponse(status, http.Header{}, []byte(`{"success": false, `+strings.TrimPrefix(body, "{")))
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("status %d: %v is not an *APIError", status, err)
			}
			if i := strings.IndexFunc(apiErr.Code, unicode.IsControl); i >= 0 || len(apiErr.Code) > 128 {
				t.Errorf("PRODUCT BUG executor/response.go parseResponse/parseError: status %d: APIError.Code is Apinizer's \"error\" "+
					"field unsanitized (%d bytes, control character at %d); want sanitize(code, 128) like Message", status, len(apiErr.Code), i)
			}
		}
	}
}

// TestExecuteRedactsAnEchoedTokenFromEveryErrorField runs Execute against a
// server that echoes the bearer token back in each place an error body can
// carry it: the token must not come back in the error, whichever field held
// it.
func TestExecuteRedactsAnEchoedTokenFromEveryErrorField(t *testing.T) {
	t.Parallel()
	const token = "TOKEN-7f3a9c-DO-NOT-LEAK"
	for _, tc := range []struct {
		name   string
		status int
		body   func(echo string) string
	}{
		{"in error_description", 401, func(e string) string { return fmt.Sprintf(`{"error":"unauthorized_client","error_description":%q}`, e) }},
		{"in resultMessage", 400, func(e string) string { return fmt.Sprintf(`{"status":"FAILURE","resultMessage":%q}`, e) }},
		{"in an HTML page", 403, func(e string) string { return "<html><body>Forbidden: " + e + "</body></html>" }},
		{"in a 200 with success false", 200, func(e string) string { return fmt.Sprintf(`{"success":false,"error_description":%q}`, e) }},
		{"in the error code", 401, func(e string) string { return fmt.Sprintf(`{"error":%q}`, e) }},
		{"in an error code of a 200", 200, func(e string) string { return fmt.Sprintf(`{"success":false,"error":%q}`, e) }},
		{"at the cut-off of an HTML excerpt", 502, func(e string) string { return strings.Repeat("x", maxExcerptBytes-20) + " " + e }},
	} {
		t.Run("a token echoed "+tc.name+" is redacted", func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body(r.Header.Get("Authorization"))))
			}))
			defer srv.Close()
			c, err := New(Config{
				BaseURL: srv.URL, Token: func() (string, error) { return token, nil },
				Retry: RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1, MaxAttempts: 1},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = c.Execute(ctx, &jobs.KeyDelete{JobID: "j", ProjectName: "P", KeyName: "k"}, Call{})
			if err == nil {
				t.Fatal("Execute succeeded")
			}
			text := err.Error()
			var apiErr *APIError
			if errors.As(err, &apiErr) {
				b, _ := json.Marshal(apiErr)
				text += " " + apiErr.Code + " " + apiErr.Message + " " + string(b)
			}
			if strings.Contains(text, token) {
				t.Errorf("LEAK (executor/client.go attempt: only APIError.Message is redacted): the token is in the error")
			} else if strings.Contains(text, token[:8]) {
				t.Errorf("LEAK (executor/response.go excerpt cuts before client.go redacts): a prefix of the token is in the error")
			}
		})
	}
}
