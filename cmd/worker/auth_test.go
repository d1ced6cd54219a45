package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/natsconn"
	"github.com/apiops-worker/apiops-worker/natsconn/natsconntest"
	"github.com/apiops-worker/apiops-worker/streams"
)

// Every way of authenticating to NATS is tested in natsconn against a server
// that requires it; the tests here are the worker's side (its variables'
// names in errors, the whole run against a server with auth), with the
// helpers natsconn's tests use.
var (
	captureLogger  = natsconntest.CaptureLogger
	assertNoSecret = natsconntest.AssertNoSecret
	writeTestFile  = natsconntest.WriteFile
	pemBody        = natsconntest.PEMBody
)

func TestAuthUnreadableCredentialFilesFailNamingTheVariable(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	const secret = "SUAGARBAGE-not-a-seed-but-secret-5e1d"
	garbage := writeTestFile(t, "garbage", []byte(secret+"\n"))
	for _, tc := range []struct {
		name string
		cfg  func(*config)
		want string
	}{
		{"a missing NKey seed file", func(c *config) { c.nats.NKeySeedFile = filepath.Join(t.TempDir(), "absent.nk") }, "NATS_NKEY"},
		{"an NKey seed file holding no seed", func(c *config) { c.nats.NKeySeedFile = garbage }, "NATS_NKEY"},
		{"a .creds file holding no credentials", func(c *config) { c.nats.CredsFile = garbage }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config{nats: natsconn.Config{URL: srv.ClientURL()}}
			tc.cfg(&cfg)
			log, logs := captureLogger()
			nc, err := connectNATS(context.Background(), cfg, log)
			if err == nil {
				nc.Close()
				t.Fatal("connectNATS succeeded")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
			assertNoSecret(t, "the connect error", err.Error(), map[string]string{"file content": secret})
			assertNoSecret(t, "the log", logs.String(), map[string]string{"file content": secret})
		})
	}
}

// workerPermissions is the least-privilege permission set of a worker that
// provisions its topology (as in deploy/compose/nats-auth.conf).
func workerPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			// runtime
			"apiops.results.>", "apiops.dlq.>",
			"$JS.API.STREAM.INFO.APIOPS_JOBS", "$JS.API.STREAM.INFO.APIOPS_RESULTS", "$JS.API.STREAM.INFO.APIOPS_DLQ",
			"$JS.API.STREAM.INFO.APIOPS_ADVISORIES", "$JS.API.STREAM.INFO.KV_apiops_ledger",
			"$JS.API.CONSUMER.INFO.APIOPS_JOBS.apiops-worker", "$JS.API.CONSUMER.MSG.NEXT.APIOPS_JOBS.apiops-worker",
			"$JS.API.CONSUMER.INFO.APIOPS_ADVISORIES.apiops-worker-advisories",
			"$JS.API.CONSUMER.MSG.NEXT.APIOPS_ADVISORIES.apiops-worker-advisories",
			"$JS.API.CONSUMER.PAUSE.APIOPS_JOBS.apiops-worker",
			"$JS.ACK.APIOPS_JOBS.apiops-worker.>", "$JS.ACK.APIOPS_ADVISORIES.apiops-worker-advisories.>",
			"$JS.API.STREAM.MSG.GET.APIOPS_JOBS", "$JS.API.STREAM.MSG.DELETE.APIOPS_JOBS",
			"$KV.apiops_ledger.>",
			"$JS.API.DIRECT.GET.KV_apiops_ledger", "$JS.API.DIRECT.GET.KV_apiops_ledger.>",
			"$JS.API.STREAM.MSG.GET.KV_apiops_ledger",
			// provisioning
			"$JS.API.STREAM.CREATE.APIOPS_JOBS", "$JS.API.STREAM.UPDATE.APIOPS_JOBS",
			"$JS.API.STREAM.CREATE.APIOPS_RESULTS", "$JS.API.STREAM.UPDATE.APIOPS_RESULTS",
			"$JS.API.STREAM.CREATE.APIOPS_DLQ", "$JS.API.STREAM.UPDATE.APIOPS_DLQ",
			"$JS.API.STREAM.CREATE.APIOPS_ADVISORIES", "$JS.API.STREAM.UPDATE.APIOPS_ADVISORIES",
			"$JS.API.STREAM.CREATE.KV_apiops_ledger", "$JS.API.STREAM.UPDATE.KV_apiops_ledger",
			"$JS.API.CONSUMER.CREATE.APIOPS_JOBS.apiops-worker",
			"$JS.API.CONSUMER.CREATE.APIOPS_ADVISORIES.apiops-worker-advisories",
			"$JS.API.INFO",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_apiops-worker.>"}},
	}
}

// TestAuthWorkerBinaryRunsAgainstAnAuthenticatedServerAndPicksUpARotatedToken
// runs the worker's whole path (run: configuration, NATS authentication,
// provisioning, the consume loop, the Apinizer call) against a server that
// requires a password and grants only the worker's permissions, and rotates
// the token file while it runs.
func TestAuthWorkerBinaryRunsAgainstAnAuthenticatedServerAndPicksUpARotatedToken(t *testing.T) {
	t.Parallel()
	const (
		workerPassword = "worker-password-93be1c-DO-NOT-LEAK"
		adminPassword  = "admin-password-0c6f7a-DO-NOT-LEAK"
		firstToken     = "apinizer-token-first-4d2b-DO-NOT-LEAK"
		secondToken    = "apinizer-token-second-rotated-77e0-DO-NOT-LEAK"
	)
	srv := natstest.RunServer(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "apiops-worker", Password: workerPassword, Permissions: workerPermissions()},
			{Username: "admin", Password: adminPassword},
		}
	})
	sim := apinizertest.NewServer(apinizertest.Config{Token: ""}) // any non-empty token
	t.Cleanup(sim.Close)
	sim.AddProject("MyProject", "production")
	sim.AddKey("MyProject", "first-key")
	sim.AddKey("MyProject", "second-key")

	tokenPath := writeTestFile(t, "apinizer-token", []byte(firstToken+"\n"))
	env := map[string]string{
		"NATS_URL":            srv.ClientURL(),
		"NATS_USER":           "apiops-worker",
		"NATS_PASSWORD":       workerPassword,
		"NATS_INBOX_PREFIX":   "_INBOX_apiops-worker",
		"APINIZER_URL":        sim.URL,
		"APINIZER_TOKEN_FILE": tokenPath,
		"METRICS_ADDR":        "127.0.0.1:0",
		"LOG_LEVEL":           "debug",
		"WORKER_ACK_WAIT":     "5s",
		"WORKER_LEASE":        "10s",
	}
	var stdout, stderr capture.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &stdout, &stderr) }()

	_, js := natstest.Connect(t, srv, nats.UserInfo("admin", adminPassword))
	awaitProvisioned(t, ctx, js, done, &stderr)
	rc, err := js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	await := func(job jobs.Job) {
		t.Helper()
		c, cancelPub := context.WithTimeout(ctx, 20*time.Second)
		defer cancelPub()
		if _, err := jobs.Publish(c, js, job); err != nil {
			t.Fatal(err)
		}
		msg, err := rc.Next(jetstream.FetchContext(c))
		if err != nil {
			t.Fatalf("no result for %s: %v\nlog:\n%s", job.ID(), err, stderr.String())
		}
		var r jobs.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			t.Fatal(err)
		}
		if r.JobID != job.ID() || r.Status != jobs.StatusSucceeded {
			t.Fatalf("result %s %s %+v, want %s succeeded", r.JobID, r.Status, r.Error, job.ID())
		}
		assertNoSecret(t, "a result", string(msg.Data()), map[string]string{"first token": firstToken, "second token": secondToken})
	}
	lastAuthorization := func() string {
		reqs := sim.Requests()
		if len(reqs) == 0 {
			t.Fatal("the simulator received no request")
		}
		return reqs[len(reqs)-1].Header.Get("Authorization")
	}

	await(&jobs.KeyDelete{JobID: "auth-run-first", ProjectName: "MyProject", KeyName: "first-key"})
	if got := lastAuthorization(); got != "Bearer "+firstToken {
		t.Errorf("first call did not carry the token from the file")
	}

	// Rotate: a new token of a different size, so the change is seen even
	// on a file system with a coarse modification time.
	if err := os.WriteFile(tokenPath, []byte(secondToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	await(&jobs.KeyDelete{JobID: "auth-run-second", ProjectName: "MyProject", KeyName: "second-key"})
	if got := lastAuthorization(); got != "Bearer "+secondToken {
		t.Errorf("the call after the rotation did not carry the new token (it carried the old one: %t)", got == "Bearer "+firstToken)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after cancellation, want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not return within 60s of cancellation")
	}
	if !strings.Contains(stderr.String(), "worker stopped") {
		t.Errorf("the log has no \"worker stopped\" line:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "Permissions Violation") || strings.Contains(stderr.String(), "permissions violation") {
		t.Errorf("the worker hit a permissions violation with its least-privilege user:\n%s", stderr.String())
	}
	secrets := map[string]string{
		"NATS password": workerPassword, "admin password": adminPassword,
		"first Apinizer token": firstToken, "second Apinizer token": secondToken,
	}
	assertNoSecret(t, "the worker's log", stderr.String(), secrets)
	assertNoSecret(t, "the worker's stdout", stdout.String(), secrets)
}
