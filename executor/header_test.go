package executor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/tracecontext"
)

func TestTraceparentIsPassedOnOnlyWhenWellFormed(t *testing.T) {
	t.Parallel()
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, in, want string
	}{
		{"a valid traceparent is sent as it is", valid, valid},
		{"a traceparent with a control character is dropped", valid[:20] + "\x01" + valid[21:], ""},
		{"a traceparent with a CRLF is dropped", valid + "\r\nX-Injected: 1", ""},
		{"a 5000-byte junk traceparent is dropped", strings.Repeat("j", 5000), ""},
		{"an all-zero trace id is dropped", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"a later version is sent as version 00", "01" + valid[2:] + "-extra", valid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			// The header is set without the canonical checks http.Header.Set
			// would apply, as the worker copies it from a NATS message.
			call := Call{Header: http.Header{tracecontext.Header: {tt.in}}}
			resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), call)
			if err != nil || resp.Status != jobs.StatusSucceeded {
				t.Fatalf("Execute = %+v, %v; want success: a traceparent never fails a job", resp, err)
			}
			reqs := b.sim.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if got := reqs[0].Header.Values(tracecontext.Header); strings.Join(got, ",") != tt.want {
				t.Errorf("traceparent sent = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequestBuildErrorsAreTheJobsFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header
	}{
		{"a header value with a newline", http.Header{"X-Request-Id": {"a\nb"}}},
		{"a header value with a NUL", http.Header{"X-Request-Id": {"a\x00b"}}},
		{"a header value with a DEL", http.Header{"X-Request-Id": {"a\x7fb"}}},
		{"a header name with a space", http.Header{"X Request": {"a"}}},
		{"an empty header name", http.Header{"": {"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" fails the job with invalid_request and sends nothing", func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			hooks := 0
			call := Call{Header: tt.header, BeforeAttempt: func(context.Context, int) error { hooks++; return nil }}
			resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), call)
			checkRequestError(t, resp, err)
			if hooks != 0 || len(b.sim.Requests()) != 0 {
				t.Errorf("BeforeAttempt ran %d times and %d requests were sent, want 0 and 0", hooks, len(b.sim.Requests()))
			}
		})
	}
	t.Run("a path parameter that would change the path fails the job with invalid_request", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		resp, err := b.client.Execute(context.Background(), &jobs.KeyDelete{JobID: "j", ProjectName: "P", KeyName: "../x"}, Call{})
		checkRequestError(t, resp, err)
	})
}

func checkRequestError(t *testing.T, resp Response, err error) {
	t.Helper()
	var reqErr *RequestError
	switch {
	case !errors.As(err, &reqErr):
		t.Fatalf("Execute error %v is not a *RequestError", err)
	case reqErr.Code() != CodeInvalidRequest:
		t.Errorf("Code() = %q, want %q", reqErr.Code(), CodeInvalidRequest)
	case class(err) != "permanent":
		t.Errorf("class = %s, want permanent", class(err))
	case errors.Is(err, ErrUnauthorized):
		t.Errorf("%v matches ErrUnauthorized: the job is at fault, not the credentials", err)
	}
	var trErr *TransportError
	if errors.As(err, &trErr) {
		t.Errorf("%v is a TransportError, which the worker counts as an outage", err)
	}
	if resp.Attempts != 0 {
		t.Errorf("Attempts = %d, want 0", resp.Attempts)
	}
}

func TestATokenAHeaderCannotCarryIsTheCredentialsFault(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.Token = func() (string, error) { return testToken + "\n", nil }
	})
	resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
	if !errors.Is(err, ErrUnauthorized) || AuthReason(err) != AuthInvalid {
		t.Errorf("Execute error %v, reason %q; want ErrUnauthorized, %q", err, AuthReason(err), AuthInvalid)
	}
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Errorf("error %q holds the token", err)
	}
	if resp.Attempts != 0 || len(b.sim.Requests()) != 0 {
		t.Errorf("Attempts = %d, requests = %d; want 0 and 0", resp.Attempts, len(b.sim.Requests()))
	}
}
