package executor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestRetriesA503BurstAndCountsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.sim.AddFault(apinizertest.Fault{Method: http.MethodPut, Times: 3, Reply: apinizertest.HTMLReply(503)})

	var hooks, retries []int
	call := Call{
		PriorAttempts: 2,
		BeforeAttempt: func(_ context.Context, attempt int) error { hooks = append(hooks, attempt); return nil },
		OnRetry: func(attempt int, err error, _ time.Duration) {
			if !errors.Is(err, ErrRetryable) {
				t.Errorf("OnRetry got %v, want a retryable error", err)
			}
			retries = append(retries, attempt)
		},
	}
	resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), call)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if resp.Status != jobs.StatusSucceeded || resp.Attempts != 4 {
		t.Errorf("response = %+v, want succeeded after 4 attempts", resp)
	}
	if diff := cmp.Diff([]int{3, 4, 5, 6}, hooks); diff != "" {
		t.Errorf("BeforeAttempt numbers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{3, 4, 5}, retries); diff != "" {
		t.Errorf("OnRetry numbers (-want +got):\n%s", diff)
	}
	var statuses []int
	for _, r := range b.sim.Requests() {
		statuses = append(statuses, r.Status)
	}
	if diff := cmp.Diff([]int{503, 503, 503, 200}, statuses); diff != "" {
		t.Errorf("statuses received (-want +got):\n%s", diff)
	}
	if got := b.sim.Applied()["certificate/MyProject/my-certificate"]; got != 1 {
		t.Errorf("applied %d times, want 1", got)
	}
}

func TestRetryStopsAtMaxAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Retry.MaxAttempts = 3 })
	b.sim.AddFault(apinizertest.Fault{Reply: apinizertest.FailureReply(500, "NullPointerException")})

	resp, err := b.client.Execute(context.Background(), &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "my-key"}, Call{})
	if class(err) != "retryable" {
		t.Fatalf("class = %s (%v), want retryable", class(err), err)
	}
	want := &APIError{StatusCode: 500, Code: "FAILURE", Message: "NullPointerException"}
	var got *APIError
	if !errors.As(err, &got) {
		t.Fatalf("%v is not an *APIError", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("APIError (-want +got):\n%s", diff)
	}
	if resp.Attempts != 3 || len(b.sim.Requests()) != 3 {
		t.Errorf("Attempts = %d, requests = %d, want 3 and 3", resp.Attempts, len(b.sim.Requests()))
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, status := range []int{400, 401, 403, 404, 409, 422} {
		b.sim.AddFault(apinizertest.Fault{Times: 1, Reply: apinizertest.ErrorReply(status, "some_code", "refused")})
		resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
		if class(err) != "permanent" || resp.Attempts != 1 {
			t.Errorf("status %d: class = %s, attempts = %d, want permanent after 1", status, class(err), resp.Attempts)
		}
	}
}

func TestRetryAfterRaisesTheWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter func() string
		minGap     time.Duration
	}{
		{"delta-seconds are waited out", func() string { return "1" }, time.Second},
		{"an HTTP-date is waited out", func() string {
			return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
		}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.AddFault(apinizertest.Fault{Times: 1, Reply: &apinizertest.Reply{Status: 429, RetryAfter: tt.retryAfter()}})

			var waits []time.Duration
			call := Call{OnRetry: func(_ int, _ error, wait time.Duration) { waits = append(waits, wait) }}
			resp, err := b.client.Execute(context.Background(), &jobs.CredentialDelete{ProjectName: "MyProject", Username: "api-user"}, call)
			if err != nil || resp.Attempts != 2 {
				t.Fatalf("Execute = %+v, %v; want success after 2 attempts", resp, err)
			}
			reqs := b.sim.Requests()
			if gap := reqs[1].Start.Sub(reqs[0].End); gap < tt.minGap {
				t.Errorf("the retry came %s after the 429, want at least %s", gap, tt.minGap)
			}
			if len(waits) != 1 || waits[0] < tt.minGap {
				t.Errorf("OnRetry waits = %v, want one of at least %s", waits, tt.minGap)
			}
		})
	}

	t.Run("a Retry-After beyond the retry budget is returned at once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil) // fastRetry allows 10s in all
		b.sim.AddFault(apinizertest.Fault{Reply: &apinizertest.Reply{Status: 503, RetryAfter: "120"}})

		resp, err := b.client.Execute(context.Background(), &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "my-key"}, Call{})
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.RetryAfter != 2*time.Minute || class(err) != "retryable" {
			t.Fatalf("error = %v, want a retryable APIError with RetryAfter 2m", err)
		}
		if resp.Attempts != 1 || len(b.sim.Requests()) != 1 {
			t.Errorf("Attempts = %d, requests = %d, want 1 and 1", resp.Attempts, len(b.sim.Requests()))
		}
	})
}

func TestAlreadyGone(t *testing.T) {
	t.Parallel()
	gone := Response{Status: jobs.StatusSucceeded, Attempts: 2, AlreadyGone: true}
	tests := []struct {
		name      string
		style     apinizertest.ResponseStyle
		first     *apinizertest.Fault // applied to the first attempt only
		prior     int
		job       jobs.Job
		want      Response
		wantClass string
	}{
		{
			name:      "a certificate delete answered not found after a 502 is already gone",
			first:     &apinizertest.Fault{Reply: apinizertest.HTMLReply(502)},
			job:       &jobs.CertificateDelete{ProjectName: "MyProject", CertificateName: "deleted-cert"},
			want:      gone,
			wantClass: "none",
		},
		{
			name:      "a key delete answered not found after a dropped connection is already gone",
			first:     &apinizertest.Fault{Drop: true},
			job:       &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "deleted-key"},
			want:      gone,
			wantClass: "none",
		},
		{
			name:      "a credential delete answered FAILURE not found after a 500 is already gone",
			style:     apinizertest.StylePods,
			first:     &apinizertest.Fault{Reply: apinizertest.FailureReply(500, "boom")},
			job:       &jobs.CredentialDelete{ProjectName: "MyProject", Username: "deleted-user"},
			want:      gone,
			wantClass: "none",
		},
		{
			// Issue 14 reversed this case: the credential does not exist,
			// so the removal did not happen and the job fails not_found.
			name:      "a public key delete of a missing credential on a redelivery fails",
			prior:     1,
			job:       &jobs.CredentialPublicKeyDelete{ProjectName: "MyProject", Username: "deleted-user"},
			want:      Response{Attempts: 1},
			wantClass: "permanent",
		},
		{
			name:      "a delete answered not found on its first attempt fails",
			job:       &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "deleted-key"},
			want:      Response{Attempts: 1},
			wantClass: "permanent",
		},
		{
			name:      "a delete answered not found after a 429 fails, as a 429 reached nothing",
			first:     &apinizertest.Fault{Reply: &apinizertest.Reply{Status: 429}},
			job:       &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "deleted-key"},
			want:      Response{Attempts: 2},
			wantClass: "permanent",
		},
		{
			name:      "a missing project on a redelivery fails",
			prior:     3,
			job:       &jobs.KeyDelete{ProjectName: "NoProject", KeyName: "my-key"},
			want:      Response{Attempts: 1},
			wantClass: "permanent",
		},
		{
			name:      "a missing project in the FAILURE style on a redelivery fails",
			style:     apinizertest.StylePods,
			prior:     3,
			job:       &jobs.CredentialDelete{ProjectName: "NoProject", Username: "api-user"},
			want:      Response{Attempts: 1},
			wantClass: "permanent",
		},
		{
			name:      "an update of a missing certificate on a redelivery fails",
			prior:     1,
			job:       &jobs.CertificateUpdate{ProjectName: "MyProject", CertificateName: "deleted-cert"},
			want:      Response{Attempts: 1},
			wantClass: "permanent",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(tt.style)
			if tt.first != nil {
				f := *tt.first
				f.Times = 1
				b.sim.AddFault(f)
			}
			resp, err := b.client.Execute(context.Background(), tt.job, Call{PriorAttempts: tt.prior})
			if class(err) != tt.wantClass {
				t.Fatalf("class = %s (%v), want %s", class(err), err, tt.wantClass)
			}
			if diff := cmp.Diff(tt.want, resp); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestContextCancellation(t *testing.T) {
	t.Parallel()

	t.Run("cancelling during a hanging request returns a retryable context error", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The fault cancels the caller's context as soon as the request
		// arrives, then hangs until the client gives up.
		b.sim.AddFault(apinizertest.Fault{Hang: true, Match: func(*http.Request) bool { cancel(); return true }})

		resp, err := b.client.Execute(ctx, &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "my-key"}, Call{})
		if !errors.Is(err, context.Canceled) || class(err) != "retryable" {
			t.Errorf("error = %v (class %s), want context.Canceled and retryable", err, class(err))
		}
		if resp.Attempts != 1 {
			t.Errorf("Attempts = %d, want 1", resp.Attempts)
		}
	})

	t.Run("cancelling during the backoff wait returns at once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *Config) {
			c.Retry.InitialInterval, c.Retry.MaxInterval, c.Retry.MaxElapsedTime = time.Hour, time.Hour, 0
		})
		b.sim.AddFault(apinizertest.Fault{Reply: &apinizertest.Reply{Status: 503}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()

		resp, err := b.client.Execute(ctx, &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "my-key"},
			Call{OnRetry: func(int, error, time.Duration) { cancel() }})
		if !errors.Is(err, context.Canceled) || class(err) != "retryable" {
			t.Errorf("error = %v (class %s), want context.Canceled and retryable", err, class(err))
		}
		if resp.Attempts != 1 {
			t.Errorf("Attempts = %d, want 1", resp.Attempts)
		}
	})
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()

	t.Run("an attempt that hangs is cut by AttemptTimeout and retried", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *Config) { c.AttemptTimeout = 100 * time.Millisecond })
		b.sim.AddFault(apinizertest.Fault{Times: 1, Hang: true})
		var first error
		resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem),
			Call{OnRetry: func(_ int, err error, _ time.Duration) { first = err }})
		if err != nil || resp.Attempts != 2 {
			t.Fatalf("Execute = %+v, %v; want success after 2 attempts", resp, err)
		}
		var tErr *TransportError
		if !errors.As(first, &tErr) || !errors.Is(first, context.DeadlineExceeded) || class(first) != "retryable" {
			t.Errorf("first error = %v, want a retryable TransportError from the deadline", first)
		}
	})

	t.Run("a stopped Apinizer is a retryable TransportError and a restarted one works", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *Config) { c.Retry.MaxAttempts = 2 })
		b.sim.Stop()
		job := &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "my-key"}
		resp, err := b.client.Execute(context.Background(), job, Call{})
		var tErr *TransportError
		if !errors.As(err, &tErr) || class(err) != "retryable" || resp.Attempts != 2 {
			t.Fatalf("Execute = %+v, %v; want a retryable TransportError after 2 attempts", resp, err)
		}
		if err := b.sim.Restart(); err != nil {
			t.Fatal(err)
		}
		if resp, err := b.client.Execute(context.Background(), job, Call{}); err != nil || resp.Status != jobs.StatusSucceeded {
			t.Errorf("after restart: %+v, %v", resp, err)
		}
	})

	t.Run("a redirect is reported, not followed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.sim.AddFault(apinizertest.Fault{Reply: &apinizertest.Reply{Status: http.StatusFound}, Match: func(*http.Request) bool { return true }})
		_, err := b.client.Execute(context.Background(), &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "my-key"}, Call{})
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusFound || class(err) != "permanent" {
			t.Errorf("error = %v, want a permanent APIError 302", err)
		}
		if n := len(b.sim.Requests()); n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
	})
}

func TestPartialDeployment(t *testing.T) {
	t.Parallel()
	for _, style := range []apinizertest.ResponseStyle{apinizertest.StyleClassic, apinizertest.StylePods} {
		t.Run("a failing environment makes the update partial", func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(style)
			b.sim.FailEnvironment("MyProject", "staging", true)
			resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != jobs.StatusPartial || resp.Deployment.Success {
				t.Errorf("response = %+v, want partial", resp)
			}
			var envs []string
			for _, e := range resp.Deployment.EnvironmentResults {
				envs = append(envs, e.EnvironmentName+"="+map[bool]string{true: "ok", false: "failed"}[e.Success])
			}
			if diff := cmp.Diff([]string{"production=ok", "staging=failed"}, envs); diff != "" {
				t.Errorf("environments (-want +got):\n%s", diff)
			}
			if c, _ := b.sim.Certificate("MyProject", "my-certificate"); c.Revision != 2 {
				t.Errorf("revision = %d, want 2: the change is applied", c.Revision)
			}
		})
	}
}

func TestTokenAndPEMNeverInErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Retry.MaxAttempts = 2 })
	// A proxy that echoes the request back must not leak the token.
	b.sim.AddFault(apinizertest.Fault{Times: 1, Reply: &apinizertest.Reply{
		Status: 400, ContentType: "text/plain", Body: "bad request: Authorization: Bearer " + testToken,
	}})
	_, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
	if err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("error %v leaks the token", err)
	}

	errs := []error{err}
	b.sim.AddFault(apinizertest.Fault{Reply: apinizertest.HTMLReply(502)})
	_, err = b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
	errs = append(errs, err)
	b.sim.Stop()
	_, err = b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
	errs = append(errs, err)
	pemBody := strings.Split(b.pem, "\n")[1]
	for _, err := range errs {
		if err == nil {
			t.Fatal("want an error")
		}
		if msg := err.Error(); strings.Contains(msg, testToken) || strings.Contains(msg, pemBody) {
			t.Errorf("error %q leaks the token or the PEM", msg)
		}
	}
}

func TestTokenIsReadForEveryAttempt(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, func(c *Config) {
		c.Token = func() (string, error) { calls.Add(1); return testToken, nil }
	})
	b.sim.AddFault(apinizertest.Fault{Times: 2, Reply: &apinizertest.Reply{Status: 503}})
	if _, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{}); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("Token called %d times, want 3", got)
	}

	t.Run("a token that cannot be read is the worker's missing credentials and sends nothing", func(t *testing.T) {
		b := setup(t, func(c *Config) {
			c.Token = func() (string, error) { return "", errors.New("open /run/token: no such file") }
		})
		resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
		if !errors.Is(err, ErrUnauthorized) || AuthReason(err) != AuthMissing || errors.Is(err, ErrPermanent) || resp.Attempts != 0 || len(b.sim.Requests()) != 0 {
			t.Errorf("Execute = %+v, %v; want unauthorized (missing), not permanent, with no attempt", resp, err)
		}
	})
}

func TestBeforeAttemptErrorStopsTheCall(t *testing.T) {
	t.Parallel()
	errSuperseded := errors.New("superseded")
	tests := []struct {
		name      string
		hookErr   error
		wantClass string
	}{
		{"an unclassified error is retryable", errSuperseded, "retryable"},
		{"a permanent error stays permanent", errors.Join(errSuperseded, ErrPermanent), "permanent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{
				BeforeAttempt: func(context.Context, int) error { return tt.hookErr },
			})
			if !errors.Is(err, errSuperseded) || class(err) != tt.wantClass {
				t.Errorf("error = %v (class %s), want %s wrapping the hook's error", err, class(err), tt.wantClass)
			}
			if resp.Attempts != 0 || len(b.sim.Requests()) != 0 {
				t.Errorf("attempts = %d, requests = %d, want none", resp.Attempts, len(b.sim.Requests()))
			}
		})
	}
}
