package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/internal/capture"
)

// TestHelpAndVersionExitZeroOnStdout checks -h, --help and --version as a
// user pipes them into less: written to stdout, nothing on stderr, and no
// error (exit 0), whatever the environment lacks.
func TestHelpAndVersionExitZeroOnStdout(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"--version"}} {
		t.Run(strings.Join(args, " ")+" writes to stdout and succeeds", func(t *testing.T) {
			t.Parallel()
			var stdout, stderr capture.Buffer
			if err := run(context.Background(), args, envOf(nil), &stdout, &stderr); err != nil {
				t.Fatalf("run: %v", err)
			}
			if stderr.String() != "" {
				t.Errorf("stderr: %q, want nothing", stderr.String())
			}
			want := "Usage: worker"
			if args[0] == "--version" {
				want = "worker "
			}
			if !strings.HasPrefix(stdout.String(), want) {
				t.Errorf("stdout %q does not start with %q", stdout.String(), want)
			}
		})
	}
}

// TestHelpGroupsTheFlags checks that -h lists every flag once, under the
// heading of what it configures, the headings in order.
func TestHelpGroupsTheFlags(t *testing.T) {
	t.Parallel()
	var out capture.Buffer
	if _, err := parseConfig([]string{"-h"}, envOf(nil), &out); err == nil {
		t.Fatal("parseConfig -h returned no error, want flag.ErrHelp")
	}
	help := out.String()
	// Each heading, and one flag that belongs under it.
	groups := []struct{ heading, flag string }{
		{"\nNATS:\n", "--nats-url string"},
		{"\nApinizer:\n", "--apinizer-token-file string"},
		{"\nWorker:\n", "--concurrency int"},
		{"\nCertificate inventory:\n", "--inventory-projects string"},
		{"\nObservability:\n", "--metrics-addr string"},
		{"\nDevelopment (make run):\n", "--dev\n"},
		{"\nEnvironment only", "APINIZER_TOKEN"},
	}
	at := 0
	for i, g := range groups {
		h := strings.Index(help, g.heading)
		if h < at {
			t.Fatalf("heading %q missing or out of order:\n%s", g.heading, help)
		}
		end := len(help)
		if i+1 < len(groups) {
			end = strings.Index(help, groups[i+1].heading)
		}
		if f := strings.Index(help[h:max(end, h)], g.flag); f < 0 {
			t.Errorf("%s is not under %q", g.flag, strings.TrimSpace(g.heading))
		}
		at = h
	}
	// Every flag, once.
	c, _ := parseConfig(nil, envOf(validEnv()), io.Discard)
	for env, name := range c.flags {
		if n := strings.Count(help, "  --"+name+" ") + strings.Count(help, "  --"+name+"\n"); n != 1 {
			t.Errorf("--%s ($%s) listed %d times, want once", name, env, n)
		}
	}
	if len(c.flags) < 40 {
		t.Errorf("only %d flags known, want the worker's 40 or more", len(c.flags))
	}
}

// TestConfigErrorsNameTheVariableAndTheFlag checks the errors parseConfig
// makes itself (beside the components' rules) and the start-up check of
// the secret files: each names the variable and the flag.
func TestConfigErrorsNameTheVariableAndTheFlag(t *testing.T) {
	t.Parallel()
	empty := writeTestFile(t, "empty-token", []byte("\n"))
	missing := filepath.Join(t.TempDir(), "no-such-token")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a lease that is not a duration", map[string]string{"WORKER_LEASE": "long"}, `WORKER_LEASE="long" (--lease): not a duration`},
		{"a lease shorter than the ack wait", map[string]string{"WORKER_LEASE": "1s"}, "WORKER_LEASE (--lease): 1s: want at least the ack wait"},
		{"a log level of loud", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL (--log-level): "},
		{"a missing APINIZER_URL", map[string]string{"APINIZER_URL": ""}, "APINIZER_URL (--apinizer-url): required"},
		{"an Apinizer client key without its certificate", map[string]string{"APINIZER_CLIENT_KEY": "k.pem"}, "APINIZER_CLIENT_CERT (--apinizer-client-cert): goes together with APINIZER_CLIENT_KEY (--apinizer-client-key)"},
		{"a NATS client certificate without its key", map[string]string{"NATS_TLS_CERT": "c.pem"}, "NATS_TLS_CERT (--nats-tls-cert)"},
		{"a token file that does not exist", map[string]string{"APINIZER_TOKEN": "", "APINIZER_TOKEN_FILE": missing}, "APINIZER_TOKEN_FILE (--apinizer-token-file): "},
		{"an empty token file", map[string]string{"APINIZER_TOKEN": "", "APINIZER_TOKEN_FILE": empty}, "APINIZER_TOKEN_FILE (--apinizer-token-file) is empty"},
		{"a client secret file that does not exist", map[string]string{"APINIZER_TOKEN": "", "APINIZER_CLIENT_ID": "ci", "APINIZER_CLIENT_SECRET_FILE": missing}, "APINIZER_CLIENT_SECRET_FILE (--apinizer-client-secret-file): "},
		{"two ways to authenticate", map[string]string{"APINIZER_CLIENT_ID": "ci", "APINIZER_CLIENT_SECRET": "s"}, "APINIZER_TOKEN, APINIZER_TOKEN_FILE (--apinizer-token-file), APINIZER_CLIENT_ID (--apinizer-client-id): set only one way"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is refused with "+tc.want, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(nil, envOf(merge(validEnv(), tc.env)), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseConfig: %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("more than one error:\n%v", err)
			}
		})
	}
}
