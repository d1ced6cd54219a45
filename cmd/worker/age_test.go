package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestAgeIdentityFileOpensSecretKeyMaterial runs the worker's whole path with
// WORKER_AGE_IDENTITY_FILE holding two identities (a rotation) and a
// key.create encrypted to the second: Apinizer gets the clear material. A
// malformed file stops the worker, naming the variable, never quoting it.
func TestAgeIdentityFileOpensSecretKeyMaterial(t *testing.T) {
	t.Parallel()
	old, current := mustIdentity(t), mustIdentity(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "age-identity")
	bad := filepath.Join(dir, "bad-identity")
	if err := os.WriteFile(good, []byte("# old, then current\n"+old.String()+"\n"+current.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	malformed := "AGE-SECRET-KEY-1NOTAKEY" + strings.Repeat("Q", 40)
	if err := os.WriteFile(bad, []byte(malformed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.RunServer(t)
	sim := apinizertest.NewServer(apinizertest.Config{Token: "age-test-token"})
	t.Cleanup(sim.Close)
	sim.AddProject("MyProject", "production")
	env := map[string]string{
		"NATS_URL":       srv.ClientURL(),
		"APINIZER_URL":   sim.URL,
		"APINIZER_TOKEN": "age-test-token",
		"METRICS_ADDR":   "127.0.0.1:0",
		"WORKER_LEASE":   "10s", "WORKER_ACK_WAIT": "5s",
	}
	getenv := func(file string) func(string) string {
		return func(k string) string {
			if k == "WORKER_AGE_IDENTITY_FILE" {
				return file
			}
			return env[k]
		}
	}

	t.Run("a malformed identity file stops the worker", func(t *testing.T) {
		var stdout, stderr capture.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := run(ctx, nil, getenv(bad), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "WORKER_AGE_IDENTITY_FILE") {
			t.Fatalf("run = %v, want an error naming WORKER_AGE_IDENTITY_FILE", err)
		}
		if all := err.Error() + stdout.String() + stderr.String(); strings.Contains(all, malformed[15:]) {
			t.Errorf("the error or the log quotes the identity file")
		}
	})

	t.Run("a key encrypted to the second identity is created", func(t *testing.T) {
		var stdout, stderr capture.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, getenv(good), &stdout, &stderr) }()
		_, js := natstest.Connect(t, srv)
		material := base64.StdEncoding.EncodeToString([]byte("age-test-key-material"))
		job := &jobs.KeyCreate{JobID: "age-key", ProjectName: "MyProject", KeyName: "k", KeyFields: jobs.KeyFields{
			KeyType: jobs.KeySecret, Algorithm: jobs.AlgorithmAES,
			CryptoKeyInfoEnvironmentList: []jobs.KeyEnvironment{{EnvironmentName: "production", EncryptedContent: sealTo(t, current.Recipient(), material)}}}}
		// The worker provisions the streams: publish once they exist.
		awaitProvisioned(t, ctx, js, done, &stderr)
		cons, err := js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		results := make(chan jobs.Result, 1)
		rc, err := cons.Consume(func(m jetstream.Msg) {
			var r jobs.Result
			if json.Unmarshal(m.Data(), &r) == nil && r.JobID == "age-key" {
				results <- r
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Stop()
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
		_, err = jobs.Publish(pctx, js, job)
		pcancel()
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-results:
			if r.Status != jobs.StatusSucceeded {
				t.Fatalf("result %+v, want succeeded", r)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no result within 20s\n%s", stderr.String())
		}
		if k, ok := sim.Key("MyProject", "k"); !ok || k.Environments[0].Content != material {
			t.Errorf("key k = %+v, %v; want the decrypted material", k, ok)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func mustIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sealTo(t testing.TB, recipient age.Recipient, clear string) string {
	t.Helper()
	sealed, err := jobs.Seal(clear, recipient)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}
