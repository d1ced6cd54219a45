package worker_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestTokenExpiredWithJobsQueuedFailsNoneAndAppliesEachOnceAfterRotation
// expires the worker's personal token (read from a file, as in production)
// while 100 jobs are queued: no job fails and none is dead-lettered; once
// the file holds the new token every job succeeds, each applied once.
func TestTokenExpiredWithJobsQueuedFailsNoneAndAppliesEachOnceAfterRotation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokenFile, token)
	rs := b.watchResults(t)

	// Apinizer's console rotated the token: the worker's is now refused
	// as expired.
	b.sim.SetToken("rotated-token")
	b.publish(t, b.keyDeletes(100, "expiring-%03d", "job-")...)
	_, reg := b.startWorker(t, workerOpts{executor: func(c *executor.Config) {
		c.Token = func() (string, error) {
			t, err := os.ReadFile(tokenFile)
			return strings.TrimSpace(string(t)), err
		}
	}})

	poll.Until(t, 20*time.Second, "the breaker to open on the refused token", func() bool {
		return gauge(t, reg, "apiops_circuit_breaker_state") == 2 // open
	})
	if v := testutil.ToFloat64(counter(t, reg, "apiops_apinizer_auth_failures_total")); v < 1 {
		t.Errorf("apiops_apinizer_auth_failures_total = %v, want at least 1", v)
	}

	writeToken(t, tokenFile, "rotated-token")
	got := rs.next(t, 100, 60*time.Second)
	for id, r := range got {
		if r.Status != jobs.StatusSucceeded {
			t.Errorf("job %s: %s %+v, want succeeded", id, r.Status, r.Error)
		}
	}
	if n := b.streamMsgs(t, streams.DeadLetters); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
	for key, n := range b.sim.Applied() {
		if n != 1 {
			t.Errorf("%s applied %d times, want once", key, n)
		}
	}
	if n := len(b.sim.Applied()); n != 100 {
		t.Errorf("%d keys deleted, want 100", n)
	}
}

// TestClientCredentialsRenewShortLivedTokensWithoutAFailedJob runs steady
// jobs for 30 seconds against 2-second tokens: no job fails, no request is
// refused, and the worker renews each token before it expires.
func TestClientCredentialsRenewShortLivedTokensWithoutAFailedJob(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second run")
	}
	t.Parallel()
	const (
		run = 30 * time.Second
		ttl = 2 * time.Second
	)
	b := setup(t)
	sim := apinizertest.NewServer(apinizertest.Config{ClientID: "rotation-bot", ClientSecret: "client-secret-DO-NOT-LEAK", TokenTTL: ttl})
	t.Cleanup(sim.Close)
	sim.AddProject(project, "production", "staging")
	b.sim = sim // keyDeletes adds the keys to this simulator
	rs := b.watchResults(t)
	_, reg := b.startWorker(t, workerOpts{executor: func(c *executor.Config) {
		c.BaseURL, c.Token = sim.URL, nil
		c.ClientCredentials = &executor.ClientCredentials{
			ClientID:     "rotation-bot",
			ClientSecret: func() (string, error) { return "client-secret-DO-NOT-LEAK", nil },
		}
	}})

	// Steady load: ten jobs a second. The ticker paces the producer; it
	// synchronises nothing.
	all := b.keyDeletes(int(run/(100*time.Millisecond)), "steady-%03d", "job-")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for _, j := range all {
		<-tick.C
		b.publish(t, j)
	}
	got := rs.next(t, len(all), 30*time.Second)
	for id, r := range got {
		if r.Status != jobs.StatusSucceeded {
			t.Errorf("job %s: %s %+v, want succeeded", id, r.Status, r.Error)
		}
	}
	for _, r := range sim.Requests() {
		if r.Status == http.StatusUnauthorized {
			t.Errorf("%s %s was refused with 401: the token was not renewed in time", r.Method, r.Path)
		}
	}
	if v := testutil.ToFloat64(counter(t, reg, "apiops_apinizer_auth_failures_total")); v != 0 {
		t.Errorf("apiops_apinizer_auth_failures_total = %v, want 0", v)
	}
	// One token per lifetime at least, renewed early: about a quarter of
	// its lifetime before it expires.
	if n, least, most := sim.TokenFetches(), int(run/ttl), int(2*run/ttl)+2; n < least || n > most {
		t.Errorf("%d token fetches in %s of 2-second tokens, want %d to %d", n, run, least, most)
	}
}

func writeToken(t *testing.T, path, token string) {
	t.Helper()
	// Written beside and renamed over, as Kubernetes updates a secret
	// volume: the worker never reads half a token.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestMissingTokenFileIsAnOutageThatSpendsNoDelivery starts a worker whose
// token file does not exist yet: the jobs wait, none is redelivered, failed
// or dead-lettered, and each is applied once after the file appears.
func TestMissingTokenFileIsAnOutageThatSpendsNoDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	rs := b.watchResults(t)
	b.publish(t, b.keyDeletes(20, "waiting-%02d", "job-")...)
	_, reg := b.startWorker(t, workerOpts{executor: func(c *executor.Config) {
		c.Token = func() (string, error) {
			t, err := os.ReadFile(tokenFile)
			return strings.TrimSpace(string(t)), err
		}
	}})

	// Six refusals take the probes' backoff (20ms doubling) over a second:
	// longer than the five deliveries of 100ms apart that a job spending
	// its deliveries would have had.
	poll.Until(t, 30*time.Second, "the breaker to stay open through six refusals of the missing token", func() bool {
		return gauge(t, reg, "apiops_circuit_breaker_state") == 2 && // open
			testutil.ToFloat64(counter(t, reg, "apiops_apinizer_auth_failures_total")) >= 6
	})
	writeToken(t, tokenFile, token)
	for id, r := range rs.next(t, 20, 60*time.Second) {
		if r.Status != jobs.StatusSucceeded || r.Attempts != 1 {
			t.Errorf("job %s: %s after %d attempts %+v, want succeeded after 1", id, r.Status, r.Attempts, r.Error)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := b.js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 20 {
		t.Errorf("the consumer made %d deliveries of 20 jobs, want 20: the missing token spent deliveries", info.Delivered.Consumer)
	}
	if n := b.streamMsgs(t, streams.DeadLetters); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}
