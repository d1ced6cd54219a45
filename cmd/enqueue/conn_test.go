package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/natsconn"
	"github.com/apiops-worker/apiops-worker/natsconn/natsconntest"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestConnectionEnqueuesToAServerThatRequiresTLSOrNKeys runs enqueue as an
// operator would against servers that require TLS (with and without a
// client certificate) or an NKey: the settings come from the environment or
// from flags, and a wrong one is refused naming the server, not the secret.
func TestConnectionEnqueuesToAServerThatRequiresTLSOrNKeys(t *testing.T) {
	t.Parallel()
	for _, a := range []natsconntest.Auth{natsconntest.TLS(t), natsconntest.MutualTLS(t), natsconntest.NKey(t)} {
		t.Run(a.Name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.RunServer(t, a.Server)
			url := srv.ClientURL()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			js, err := jetstream.New(a.Conn(t, url))
			if err != nil {
				t.Fatal(err)
			}
			if err := streams.Provision(ctx, js, streams.Config{}.WithDefaults()); err != nil {
				t.Fatal(err)
			}

			enqueue := func(t *testing.T, jobID string, env map[string]string, flags ...string) (string, error) {
				t.Helper()
				var stdout, stderr strings.Builder
				args := append([]string{"key", "delete", "--project", "MyProject", "--name", "k", "--id", jobID}, flags...)
				err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
				return stderr.String(), err
			}
			published := func(t *testing.T, jobID string) {
				t.Helper()
				stream, err := js.Stream(ctx, streams.Jobs)
				if err != nil {
					t.Fatal(err)
				}
				msg, err := stream.GetLastMsgForSubject(ctx, jobs.SubjectKeyDelete)
				if err != nil {
					t.Fatalf("no job on %s: %v", jobs.SubjectKeyDelete, err)
				}
				if !strings.Contains(string(msg.Data), jobID) {
					t.Errorf("the last job is not %s: %s", jobID, msg.Data)
				}
			}

			t.Run("the settings in the environment publish the job", func(t *testing.T) {
				if stderr, err := enqueue(t, "tls-nkey-env", natsEnv(a.Good, url)); err != nil {
					t.Fatalf("enqueue: %v\nstderr:\n%s", err, stderr)
				}
				published(t, "tls-nkey-env")
			})

			t.Run("the settings as flags publish the job", func(t *testing.T) {
				if stderr, err := enqueue(t, "tls-nkey-flags", nil, natsFlags(a.Good, url)...); err != nil {
					t.Fatalf("enqueue: %v\nstderr:\n%s", err, stderr)
				}
				published(t, "tls-nkey-flags")
			})

			t.Run("a wrong setting is refused naming the server without the secret", func(t *testing.T) {
				stderr, err := enqueue(t, "tls-nkey-wrong", natsEnv(a.Bad, url))
				if err == nil {
					t.Fatal("enqueue succeeded with a wrong setting")
				}
				if code := exitCode(err, io.Discard); code != 2 {
					t.Errorf("exit status %d, want 2", code)
				}
				if !strings.Contains(err.Error(), "NATS at "+url) {
					t.Errorf("error %q does not name the server %s", err, url)
				}
				natsconntest.AssertNoSecret(t, "the error", err.Error(), a.Secrets)
				natsconntest.AssertNoSecret(t, "stderr", stderr, a.Secrets)
			})
		})
	}
}

// natsEnv is the environment holding c's TLS and NKey settings.
func natsEnv(c natsconn.Config, url string) map[string]string {
	return map[string]string{
		"NATS_URL": url, "NATS_NKEY": c.NKeySeedFile,
		"NATS_TLS_CA": c.TLSCAFile, "NATS_TLS_CERT": c.TLSCertFile, "NATS_TLS_KEY": c.TLSKeyFile,
	}
}

// natsFlags is the flags giving c's TLS and NKey settings.
func natsFlags(c natsconn.Config, url string) []string {
	flags := []string{"--nats-url", url}
	for _, f := range []struct{ name, value string }{
		{"--nkey", c.NKeySeedFile}, {"--tls-ca", c.TLSCAFile}, {"--tls-cert", c.TLSCertFile}, {"--tls-key", c.TLSKeyFile},
	} {
		if f.value != "" {
			flags = append(flags, f.name, f.value)
		}
	}
	return flags
}
