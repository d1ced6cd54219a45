package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// envOf is a getenv over a map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// validEnv is the smallest production environment parseConfig accepts.
func validEnv() map[string]string {
	return map[string]string{
		"APINIZER_URL":   "https://apinizer.example.com",
		"APINIZER_TOKEN": "config-test-token-2c9a-DO-NOT-LEAK",
	}
}

func TestConfigRefusesEachBadVariableByName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// env is applied over validEnv; an empty value removes the variable.
		env  map[string]string
		args []string
		want string // the variable the one error names
	}{
		{"a missing APINIZER_URL without --dev", map[string]string{"APINIZER_URL": ""}, nil, "APINIZER_URL"},
		{"an APINIZER_URL that is not http(s)", map[string]string{"APINIZER_URL": "ftp://apinizer.example.com"}, nil, "APINIZER_URL"},
		{"an APINIZER_URL without a host", map[string]string{"APINIZER_URL": "https://"}, nil, "APINIZER_URL"},
		{"plain http to a host that is not loopback", map[string]string{"APINIZER_URL": "http://apinizer.example.com"}, nil, "APINIZER_URL"},
		{"plain http to a private address", map[string]string{"APINIZER_URL": "http://10.0.0.7:8080"}, nil, "APINIZER_URL"},
		{"no token at all", map[string]string{"APINIZER_TOKEN": ""}, nil, "APINIZER_TOKEN"},
		{"both a token and a token file", map[string]string{"APINIZER_TOKEN_FILE": "/run/secrets/apinizer-token"}, nil, "APINIZER_TOKEN_FILE"},
		{"both a token and client credentials", map[string]string{"APINIZER_CLIENT_ID": "ci", "APINIZER_CLIENT_SECRET": "s"}, nil, "APINIZER_CLIENT_ID"},
		{"a client secret without a client id", map[string]string{"APINIZER_TOKEN": "", "APINIZER_CLIENT_SECRET": "s"}, nil, "APINIZER_CLIENT_ID"},
		{"a client id without a secret", map[string]string{"APINIZER_TOKEN": "", "APINIZER_CLIENT_ID": "ci"}, nil, "APINIZER_CLIENT_SECRET_FILE"},
		{"a client secret and a client secret file", map[string]string{"APINIZER_TOKEN": "", "APINIZER_CLIENT_ID": "ci", "APINIZER_CLIENT_SECRET": "s", "APINIZER_CLIENT_SECRET_FILE": "/run/secrets/s"}, nil, "APINIZER_CLIENT_SECRET_FILE"},
		{"a concurrency that is not a number", map[string]string{"WORKER_CONCURRENCY": "abc"}, nil, "WORKER_CONCURRENCY"},
		{"a concurrency of 0", map[string]string{"WORKER_CONCURRENCY": "0"}, nil, "WORKER_CONCURRENCY"},
		{"a concurrency of 5000", map[string]string{"WORKER_CONCURRENCY": "5000"}, nil, "WORKER_CONCURRENCY"},
		{"a concurrency flag of 5000", nil, []string{"--concurrency=5000"}, "WORKER_CONCURRENCY"},
		{"fewer jobs held than calls", map[string]string{"WORKER_CONCURRENCY": "8", "WORKER_MAX_JOBS": "4"}, nil, "WORKER_MAX_JOBS"},
		{"an ack wait of 0s", map[string]string{"WORKER_ACK_WAIT": "0s"}, nil, "WORKER_ACK_WAIT"},
		{"an ack wait that is not a duration", map[string]string{"WORKER_ACK_WAIT": "soon"}, nil, "WORKER_ACK_WAIT"},
		{"a lease shorter than the ack wait", map[string]string{"WORKER_ACK_WAIT": "30s", "WORKER_LEASE": "10s"}, nil, "WORKER_LEASE"},
		{"a log level of loud", map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{"a log format of xml", map[string]string{"LOG_FORMAT": "xml"}, nil, "LOG_FORMAT"},
		{"a NATS client certificate without its key", map[string]string{"NATS_TLS_CERT": "/etc/nats/client.pem"}, nil, "NATS_TLS_CERT"},
		{"a NATS client key without its certificate", map[string]string{"NATS_TLS_KEY": "/etc/nats/client-key.pem"}, nil, "NATS_TLS_CERT"},
		{"an Apinizer client certificate without its key", map[string]string{"APINIZER_CLIENT_CERT": "/etc/apinizer/client.pem"}, nil, "APINIZER_CLIENT_CERT"},
		{"an Apinizer client key without its certificate", map[string]string{"APINIZER_CLIENT_KEY": "/etc/apinizer/client-key.pem"}, nil, "APINIZER_CLIENT_CERT"},
		{"an insecure-http switch that is not a boolean", map[string]string{"APINIZER_ALLOW_INSECURE_HTTP": "maybe"}, nil, "APINIZER_ALLOW_INSECURE_HTTP"},
		{"a max deliver of 1", map[string]string{"WORKER_MAX_DELIVER": "1"}, nil, "WORKER_MAX_DELIVER"},
		{"a job timeout shorter than the attempt timeout", map[string]string{"WORKER_JOB_TIMEOUT": "1s"}, nil, "WORKER_JOB_TIMEOUT"},
		{"an empty NATS_URL flag", nil, []string{"--nats-url="}, "NATS_URL"},
		{"samples without --dev", map[string]string{"WORKER_DEV_SAMPLES": "true"}, nil, "WORKER_DEV_SAMPLES"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is refused naming "+tc.want, func(t *testing.T) {
			t.Parallel()
			env := validEnv()
			env["NATS_PASSWORD"] = "nats-password-in-config-test-DO-NOT-LEAK"
			for k, v := range tc.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			_, err := parseConfig(tc.args, envOf(env), io.Discard)
			if err == nil {
				t.Fatal("parseConfig accepted the configuration")
			}
			msg := err.Error()
			if lines := strings.Split(msg, "\n"); len(lines) != 1 {
				t.Errorf("want exactly one error, got %d:\n%s", len(lines), msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name %s", msg, tc.want)
			}
			assertNoSecret(t, "the configuration error", msg, map[string]string{
				"Apinizer token": env["APINIZER_TOKEN"], "NATS password": env["NATS_PASSWORD"],
			})
		})
	}
}

func TestConfigReportsEveryBadVariableAtOnce(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WORKER_CONCURRENCY": "0", "LOG_LEVEL": "loud", "APINIZER_CLIENT_CERT": "c.pem"}
	_, err := parseConfig(nil, envOf(env), io.Discard)
	if err == nil {
		t.Fatal("parseConfig accepted the configuration")
	}
	for _, v := range []string{"APINIZER_URL", "APINIZER_TOKEN", "WORKER_CONCURRENCY", "LOG_LEVEL", "APINIZER_CLIENT_CERT"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error does not name %s:\n%s", v, err)
		}
	}
}

func TestConfigAcceptsGoodConfigurations(t *testing.T) {
	t.Parallel()
	// Secret files are read at start-up: these exist.
	tokenFile := writeTestFile(t, "apinizer-token", []byte("config-test-token\n"))
	secretFile := writeTestFile(t, "client-secret", []byte("config-test-secret\n"))
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c config)
	}{
		{
			name: "the defaults",
			env:  validEnv(),
			check: func(t *testing.T, c config) {
				want := map[string]any{
					"natsURL": "nats://127.0.0.1:4222", "metricsAddr": ":9090", "concurrency": 16,
					"ackWait": 30 * time.Second, "maxDeliver": 20, "retryBudget": time.Minute,
					"attemptTimeout": 30 * time.Second, "jobTimeout": 5 * time.Minute,
					"lease": time.Minute, "logLevel": "info", "logFormat": "json",
					"provision": true, "dev": false, "allowInsecureHTTP": false,
				}
				got := map[string]any{
					"natsURL": c.nats.URL, "metricsAddr": c.metricsAddr, "concurrency": c.worker.Concurrency,
					"ackWait": c.topo.AckWait, "maxDeliver": c.topo.MaxDeliver, "retryBudget": c.retryBudget,
					"attemptTimeout": c.attemptTimeout, "jobTimeout": c.worker.JobTimeout,
					"lease": c.lease, "logLevel": c.logLevel, "logFormat": c.logFormat,
					"provision": c.provision, "dev": c.dev, "allowInsecureHTTP": c.allowInsecureHTTP,
				}
				for k, w := range want {
					if got[k] != w {
						t.Errorf("%s = %v, want %v", k, got[k], w)
					}
				}
			},
		},
		{
			name: "flags override the environment",
			env:  merge(validEnv(), map[string]string{"WORKER_CONCURRENCY": "8", "LOG_LEVEL": "warn", "NATS_URL": "nats://env:4222"}),
			args: []string{"--concurrency=4", "--log-level=debug", "--nats-url=nats://flag:4222", "--no-provision"},
			check: func(t *testing.T, c config) {
				if c.worker.Concurrency != 4 || c.logLevel != "debug" || c.nats.URL != "nats://flag:4222" || c.provision {
					t.Errorf("concurrency %d, log level %s, NATS URL %s, provision %t; want the flags' 4, debug, nats://flag:4222, false",
						c.worker.Concurrency, c.logLevel, c.nats.URL, c.provision)
				}
			},
		},
		{
			name: "--dev needs no APINIZER_URL nor token, and logs text",
			env:  map[string]string{},
			args: []string{"--dev"},
			check: func(t *testing.T, c config) {
				if !c.dev || c.logFormat != "text" || c.apinizerURL != "" {
					t.Errorf("dev %t, log format %s, URL %q; want dev, text, no URL", c.dev, c.logFormat, c.apinizerURL)
				}
			},
		},
		{
			name: "plain http to 127.0.0.1",
			env:  merge(validEnv(), map[string]string{"APINIZER_URL": "http://127.0.0.1:8080"}),
		},
		{
			name: "plain http to localhost",
			env:  merge(validEnv(), map[string]string{"APINIZER_URL": "http://localhost:8080"}),
		},
		{
			name: "plain http to ::1",
			env:  merge(validEnv(), map[string]string{"APINIZER_URL": "http://[::1]:8080"}),
		},
		{
			name: "plain http elsewhere with APINIZER_ALLOW_INSECURE_HTTP=true",
			env:  merge(validEnv(), map[string]string{"APINIZER_URL": "http://apinizer-sim:8080", "APINIZER_ALLOW_INSECURE_HTTP": "true"}),
			check: func(t *testing.T, c config) {
				if !c.allowInsecureHTTP {
					t.Error("allowInsecureHTTP is false")
				}
			},
		},
		{
			name: "a token file instead of a token",
			env:  merge(validEnv(), map[string]string{"APINIZER_TOKEN": "", "APINIZER_TOKEN_FILE": tokenFile}),
		},
		{
			name: "client credentials with an inline secret",
			env:  merge(validEnv(), map[string]string{"APINIZER_TOKEN": "", "APINIZER_CLIENT_ID": "ci", "APINIZER_CLIENT_SECRET": "s"}),
		},
		{
			name: "client credentials with a secret file",
			env:  merge(validEnv(), map[string]string{"APINIZER_TOKEN": "", "APINIZER_CLIENT_ID": "ci", "APINIZER_CLIENT_SECRET_FILE": secretFile}),
		},
		{
			name: "both halves of each client certificate",
			env: merge(validEnv(), map[string]string{
				"NATS_TLS_CERT": "n.pem", "NATS_TLS_KEY": "n-key.pem",
				"APINIZER_CLIENT_CERT": "a.pem", "APINIZER_CLIENT_KEY": "a-key.pem",
			}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is accepted", func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range tc.env {
				if v != "" {
					env[k] = v
				}
			}
			c, err := parseConfig(tc.args, envOf(env), io.Discard)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func TestTokenFileIsReReadOnlyWhenItChanges(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	get := (config{apinizerTokenFile: path}).token()
	want := func(step, token string) {
		t.Helper()
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got != token {
			t.Errorf("%s: token %q, want %q", step, got, token)
		}
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	write("token-AAAA\n", t0)
	want("first read, surrounding white space trimmed", "token-AAAA")

	// Same size, same modification time: the cached token is used, which
	// proves the file is not read on every call.
	write("token-BBBB\n", t0)
	want("content changed behind an unchanged mtime and size", "token-AAAA")

	write("token-BBBB\n", t0.Add(time.Second))
	want("a new modification time", "token-BBBB")

	write("token-CCCCCC\n", t0.Add(time.Second))
	want("a new size with the same modification time", "token-CCCCCC")

	write("  \n", t0.Add(2*time.Second))
	_, err := get()
	if err == nil || !strings.Contains(err.Error(), "APINIZER_TOKEN_FILE") {
		t.Errorf("empty file: error %v, want one naming APINIZER_TOKEN_FILE", err)
	}

	write("token-DDDD\n", t0.Add(3*time.Second))
	want("a token written after an empty file", "token-DDDD")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err = get()
	if err == nil || !strings.Contains(err.Error(), "APINIZER_TOKEN_FILE") {
		t.Errorf("missing file: error %v, want one naming APINIZER_TOKEN_FILE", err)
	}
	if err != nil && strings.Contains(err.Error(), "token-DDDD") {
		t.Error("LEAK: the error for a missing token file carries the cached token")
	}
}

func TestTokenInlineIsReturnedAsIs(t *testing.T) {
	t.Parallel()
	got, err := (config{apinizerToken: "inline"}).token()()
	if err != nil || got != "inline" {
		t.Errorf("token() = %q, %v; want inline", got, err)
	}
}

// TestConfigApinizerTLSWithAPrivateCA goes from the environment
// (APINIZER_CA_FILE, APINIZER_CLIENT_CERT, APINIZER_CLIENT_KEY) to a call
// to an Apinizer that requires a client certificate from a private CA.
func TestConfigApinizerTLSWithAPrivateCA(t *testing.T) {
	t.Parallel()
	ca, err := selfsigned.NewCA("apinizer private CA")
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := ca.Issue("apiops-worker")
	if err != nil {
		t.Fatal(err)
	}
	sim := apinizertest.New(apinizertest.Config{Token: "tls-token"})
	sim.AddProject("P", "production")
	srv, err := ca.NewMutualTLSServer(sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	caFile := writeTestFile(t, "ca.pem", ca.PEM)
	certFile := writeTestFile(t, "client.pem", cliCert)
	keyFile := writeTestFile(t, "client-key.pem", cliKey)
	emptyCA := writeTestFile(t, "empty.pem", []byte("no certificate here\n"))

	tests := []struct {
		name      string
		env       map[string]string
		configErr string // the variable a configuration error names
		callOK    bool
	}{
		{"the CA file and a client certificate reach Apinizer", map[string]string{"APINIZER_CA_FILE": caFile, "APINIZER_CLIENT_CERT": certFile, "APINIZER_CLIENT_KEY": keyFile}, "", true},
		{"without the CA file the private CA is not trusted", map[string]string{"APINIZER_CLIENT_CERT": certFile, "APINIZER_CLIENT_KEY": keyFile}, "", false},
		{"without a client certificate the server refuses", map[string]string{"APINIZER_CA_FILE": caFile}, "", false},
		{"a CA file holding no certificate is a configuration error", map[string]string{"APINIZER_CA_FILE": emptyCA}, "APINIZER_CA_FILE", false},
		{"a missing CA file is a configuration error", map[string]string{"APINIZER_CA_FILE": filepath.Join(t.TempDir(), "absent.pem")}, "APINIZER_CA_FILE", false},
		{"a client key that does not match is a configuration error", map[string]string{"APINIZER_CLIENT_CERT": certFile, "APINIZER_CLIENT_KEY": caFile}, "APINIZER_CLIENT_CERT", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := merge(map[string]string{"APINIZER_URL": srv.URL, "APINIZER_TOKEN": "tls-token"}, tc.env)
			c, err := parseConfig(nil, envOf(env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tlsCfg, err := c.apinizerTLS()
			if tc.configErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.configErr) {
					t.Fatalf("apinizerTLS: %v, want an error naming %s", err, tc.configErr)
				}
				assertNoSecret(t, "the TLS configuration error", err.Error(), map[string]string{"client key": pemBody(cliKey)})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ex, err := executor.New(executor.Config{
				BaseURL: c.apinizerURL, Token: c.token(), TLS: tlsCfg,
				Retry: executor.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1, MaxAttempts: 1},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ex.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := ex.Execute(ctx, &jobs.CredentialDelete{JobID: "tls", ProjectName: "P", Username: "nobody"}, executor.Call{})
			// The simulator answers a missing credential with 400: reaching
			// it at all is what matters here.
			reached := resp.Attempts == 1 && (err == nil || !isTransport(err))
			if reached != tc.callOK {
				t.Errorf("reached Apinizer: %t (err %v), want %t", reached, err, tc.callOK)
			}
			if err != nil && strings.Contains(err.Error(), "tls-token") {
				t.Error("LEAK: the call's error carries the token")
			}
		})
	}
}

func isTransport(err error) bool {
	var te *executor.TransportError
	return errors.As(err, &te)
}

// TestConfigErrorOfAComponentSettingNamesTheVariableAndTheFlag checks that a
// rule the worker or the topology owns comes back naming both ways to set it.
func TestConfigErrorOfAComponentSettingNamesTheVariableAndTheFlag(t *testing.T) {
	t.Parallel()
	// Each error, and the flags that cause it.
	for want, args := range map[string][]string{
		"WORKER_CONCURRENCY (--concurrency): must be 1 to 4096, not 0":                                    {"--concurrency=0"},
		"WORKER_MAX_JOBS (--max-jobs): must be 0 (the default, 16) or 8 (the concurrency) to 8192, not 4": {"--concurrency=8", "--max-jobs=4"},
		"WORKER_ACK_WAIT (--ack-wait): must be at least 1s, not 500ms":                                    {"--ack-wait=500ms"},
		"WORKER_MAX_DELIVER (--max-deliver): must be at least 2, not 1":                                   {"--max-deliver=1"},
		"WORKER_STREAM_REPLICAS (--replicas): must be 1 to 5, not 6":                                      {"--replicas=6"},
		"WORKER_SHUTDOWN_GRACE (--shutdown-grace): must be positive, not 0s":                              {"--shutdown-grace=0s"},
	} {
		t.Run(strings.Join(args, " ")+" is refused with "+want, func(t *testing.T) {
			t.Parallel()
			if _, err := parseConfig(args, envOf(validEnv()), io.Discard); err == nil || err.Error() != want {
				t.Errorf("parseConfig: %v, want %q", err, want)
			}
		})
	}
}
