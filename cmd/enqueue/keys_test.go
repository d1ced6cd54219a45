package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// privateKeyPEM is recognisable PRIVATE_KEY material for the scripts.
const privateKeyPEM = "-----BEGIN PRIVATE KEY-----\nUkVDT0dOSVNBQkxFLVBSSVZBVEUtS0VZ\n-----END PRIVATE KEY-----\n"

// TestKeyScripts runs testdata/keys/*.txtar: the rotation toolset as a user
// types it, against a worker holding an age identity.
func TestKeyScripts(t *testing.T) {
	stack := workertest.Start(t, streams.Config{AckWait: 3 * time.Second, MaxDeliver: 3})
	sim := stack.Sim
	old, err := selfsigned.PEM("signing before rotation")
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := selfsigned.PEM("signing after rotation")
	if err != nil {
		t.Fatal(err)
	}
	sim.AddCertificate(workertest.Project, "signing-cert", old)
	sim.AddKey(workertest.Project, "key-a")
	sim.AddCredential(workertest.Project, "api-user", true)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stack.StartWorker(t, workertest.Worker{
		Config:   worker.Config{Concurrency: 4},
		Executor: func(c *executor.Config) { c.Identities = []age.Identity{id} },
	})
	testscript.Run(t, testscript.Params{
		Dir: "testdata/keys",
		Setup: func(e *testscript.Env) error {
			e.Setenv("NATS_URL", stack.Server.ClientURL())
			e.Setenv("WORKER_AGE_RECIPIENT", id.Recipient().String())
			for name, content := range map[string]string{"rotated.pem": rotated, "key-b.pem": privateKeyPEM, "key-b.pub": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"} {
				if err := os.WriteFile(filepath.Join(e.WorkDir, name), []byte(content), 0o600); err != nil {
					return err
				}
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// rotated checks the simulator's state after the rotation
			// walk-through.
			"rotated": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 0 {
					ts.Fatalf("usage: rotated")
				}
				checkRotated(ts, sim, rotated)
			},
		},
	})
}

func checkRotated(ts *testscript.TestScript, sim *apinizertest.Server, rotated string) {
	const p = workertest.Project
	if sim.KeyExists(p, "key-a") {
		ts.Fatalf("key-a still exists")
	}
	if k, ok := sim.Key(p, "key-b"); !ok || k.KeyType != "PUBLIC_KEY" {
		ts.Fatalf("key-b = %+v, %v; want a PUBLIC_KEY", k, ok)
	}
	k, ok := sim.Key(p, "key-b-private")
	want := base64.StdEncoding.EncodeToString([]byte(privateKeyPEM))
	if !ok || k.KeyType != "PRIVATE_KEY" || len(k.Environments) != 1 || k.Environments[0].Content != want {
		ts.Fatalf("key-b-private = %+v, %v; want a PRIVATE_KEY holding key-b.pem, decrypted by the worker", k, ok)
	}
	if c, _ := sim.Credential(p, "api-user"); c.PublicKey != "key-b" {
		ts.Fatalf("api-user = %+v; want key-b assigned", c)
	}
	jwk, ok := sim.JWK(p, "signing-jwk")
	thumb, err := jobs.Thumbprint(rotated)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	if !ok || jwk.SHA1Thumbprint != thumb || jwk.CertificateName != "signing-cert" {
		ts.Fatalf("signing-jwk = %+v, %v; want it parsed from the rotated certificate %s", jwk, ok, thumb)
	}
}
