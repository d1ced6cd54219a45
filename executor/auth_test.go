package executor

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// clientCredentialsSetup starts a simulator that issues tokens living ttl
// and a client that gets them with client credentials.
func clientCredentialsSetup(t *testing.T, style apinizertest.ResponseStyle, ttl time.Duration, secret string) *bundle {
	t.Helper()
	srv := apinizertest.NewServer(apinizertest.Config{ClientID: "ops", ClientSecret: "s3cret", TokenTTL: ttl, Style: style})
	t.Cleanup(srv.Close)
	pemText := testPEM(t)
	srv.AddProject("MyProject", "production", "staging")
	srv.AddCertificate("MyProject", "my-certificate", pemText)
	c, err := New(Config{
		BaseURL: srv.URL,
		ClientCredentials: &ClientCredentials{
			ClientID:     "ops",
			ClientSecret: func() (string, error) { return secret, nil },
		},
		AttemptTimeout: 5 * time.Second,
		Retry:          fastRetry(),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return &bundle{sim: srv, client: c, pem: pemText}
}

// unauthorizedAnswers counts the APIOps requests the simulator refused with
// 401.
func unauthorizedAnswers(sim *apinizertest.Server) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Status == http.StatusUnauthorized {
			n++
		}
	}
	return n
}

func TestClientCredentialsRenewTokensBeforeTheyExpire(t *testing.T) {
	t.Parallel()
	const ttl, run = 2 * time.Second, 6 * time.Second
	b := clientCredentialsSetup(t, apinizertest.StyleCurrent, ttl, "s3cret")

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(run)
	jobsRun := 0
	for time.Now().Before(deadline) {
		<-tick.C
		resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
		if err != nil || resp.Status != jobs.StatusSucceeded {
			t.Fatalf("job %d: %+v, %v; want every job to succeed", jobsRun, resp, err)
		}
		jobsRun++
	}
	if n := unauthorizedAnswers(b.sim); n != 0 {
		t.Errorf("%d requests were refused with 401, want none: tokens are renewed before they expire", n)
	}
	// Renewed a quarter of the lifetime early: one token per 1.5s, and not
	// one per job.
	if got, lo, hi := b.sim.TokenFetches(), int(run/(ttl*3/4)), int(run/(ttl*3/4))+2; got < lo || got > hi {
		t.Errorf("%d token fetches for %d jobs over %s with %s tokens, want %d to %d", got, jobsRun, run, ttl, lo, hi)
	}
}

func TestClientCredentialsFetchAFreshTokenOnceOnA401(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("a token revoked early is replaced and the job succeeds, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := clientCredentialsSetup(t, rev.style, time.Hour, "s3cret")
			if err := b.client.Probe(context.Background()); err != nil {
				t.Fatalf("Probe: %v", err)
			}
			b.sim.ExpireTokens()
			resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
			if err != nil || resp.Status != jobs.StatusSucceeded || resp.Attempts != 2 {
				t.Fatalf("Execute = %+v, %v; want succeeded after 2 attempts (the refused one and the retry)", resp, err)
			}
			if got := b.sim.TokenFetches(); got != 2 {
				t.Errorf("%d token fetches, want 2", got)
			}
		})
	}
	t.Run("a token refused even when fresh fails the call as unauthorized after one retry", func(t *testing.T) {
		t.Parallel()
		b := clientCredentialsSetup(t, apinizertest.StyleCurrent, time.Hour, "s3cret")
		// Every APIOps call refused, as with a user whose tokens are revoked
		// as soon as they are issued.
		b.sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/", Reply: apinizertest.FailureReply(401, "Token is not valid!")})
		resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
		if !errors.Is(err, ErrUnauthorized) || AuthReason(err) != AuthInvalid || resp.Attempts != 2 {
			t.Fatalf("Execute = %+v, %v; want ErrUnauthorized (invalid) after 2 attempts", resp, err)
		}
		if got := b.sim.TokenFetches(); got != 2 {
			t.Errorf("%d token fetches, want 2: one fresh token per call, not a loop", got)
		}
	})
}

func TestBadClientCredentialsAreUnauthorizedAndSendNothing(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("a wrong secret is bad_client_credentials, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := clientCredentialsSetup(t, rev.style, time.Hour, "wrong")
			resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
			var tokErr *TokenError
			if !errors.As(err, &tokErr) || tokErr.Message != "Bad credentials" || AuthReason(err) != AuthBadClientCredentials || resp.Attempts != 0 {
				t.Fatalf("Execute = %+v, %v; want a TokenError saying Bad credentials, before any attempt", resp, err)
			}
			for _, r := range b.sim.Requests() {
				if r.Path != apinizertest.TokenPath {
					t.Errorf("request %s %s sent without a token", r.Method, r.Path)
				}
			}
			if err := b.client.Probe(context.Background()); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("Probe = %v, want ErrUnauthorized", err)
			}
		})
	}
	t.Run("an unreachable token endpoint is retryable", func(t *testing.T) {
		t.Parallel()
		b := clientCredentialsSetup(t, apinizertest.StyleCurrent, time.Hour, "s3cret")
		b.sim.Stop()
		_, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
		if class(err) != "retryable" || errors.Is(err, ErrUnauthorized) {
			t.Errorf("error %v (class %s), want retryable and not unauthorized", err, class(err))
		}
	})
}

func TestPersonalTokenRejectedIsUnauthorizedUntilRotated(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("a rotated-out token fails unauthorized and the new one works at once, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			var current atomic.Value
			current.Store(testToken)
			b := setup(t, func(c *Config) { c.Token = func() (string, error) { return current.Load().(string), nil } })
			b.sim.SetStyle(rev.style)
			b.sim.SetToken("rotated-token")

			resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
			want := map[apinizertest.ResponseStyle]string{apinizertest.StyleClassic: AuthInvalid, apinizertest.StyleCurrent: AuthExpired}[rev.style]
			if !errors.Is(err, ErrUnauthorized) || AuthReason(err) != want || resp.Attempts != 1 {
				t.Fatalf("Execute = %+v, %v (reason %q); want ErrUnauthorized (%s) after 1 attempt", resp, err, AuthReason(err), want)
			}
			if err := b.client.Probe(context.Background()); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("Probe with the old token = %v, want ErrUnauthorized", err)
			}

			current.Store("rotated-token")
			if err := b.client.Probe(context.Background()); err != nil {
				t.Errorf("Probe with the new token = %v, want nil", err)
			}
			if resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{}); err != nil || resp.Status != jobs.StatusSucceeded {
				t.Errorf("Execute with the new token = %+v, %v; want succeeded", resp, err)
			}
		})
	}
}

func TestProbeCallsTheDocumentedReadOnlyEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if err := b.client.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	reqs := b.sim.Requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/apiops/projects/" || reqs[0].Status != http.StatusOK {
		t.Errorf("requests %+v, want one GET /apiops/projects/ answered 200", reqs)
	}
	b.sim.AddFault(apinizertest.Fault{Times: 1, Reply: &apinizertest.Reply{Status: 503}})
	if err := b.client.Probe(context.Background()); class(err) != "retryable" || len(b.sim.Requests()) != 2 {
		t.Errorf("Probe on a 503 = %v after %d requests, want retryable after one more request", err, len(b.sim.Requests())-1)
	}
}
