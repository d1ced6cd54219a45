//go:build dev

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// startDevRun runs `make run` with args added until the test ends, and
// returns its output once stdout has said until.
func startDevRun(t *testing.T, until string, args ...string) (stdout, stderr *capture.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &capture.Buffer{}, &capture.Buffer{}
	done := make(chan error, 1)
	args = append([]string{"--dev", "--metrics-addr", "127.0.0.1:0", "--dev-data-dir", t.TempDir()}, args...)
	go func() { done <- run(ctx, args, func(string) string { return "" }, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run after interrupt: %v", err)
			}
			if !strings.Contains(stderr.String(), "stopping: finishing ") {
				t.Errorf("the interrupt was not answered with the drain's line:\n%s", stderr)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop within 30s of the interrupt")
		}
	})
	poll.Until(t, 60*time.Second, "stdout to say "+until, func() bool { return strings.Contains(stdout.String(), until) })
	// Stopped only once it consumes: an interrupt during start-up is an
	// error of its own.
	readyz := bannerValue(t, stdout.String(), "readyz")
	poll.Until(t, 30*time.Second, readyz+" to answer 200", func() bool {
		resp, err := http.Get(readyz)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return stdout, stderr
}

// bannerValue is the value of the banner's line "key: value".
func bannerValue(t *testing.T, out, key string) string {
	t.Helper()
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(line, key+": "); ok {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("no %q line in the banner:\n%s", key, out)
	return ""
}

// TestDevRunBannerSaysWhereEverythingIsAndResultsAreOneLineEach checks the
// banner (NATS, /metrics, /readyz, the dashboard), that each result is one
// line of JSON on stdout and none is in the logs on stderr.
func TestDevRunBannerSaysWhereEverythingIsAndResultsAreOneLineEach(t *testing.T) {
	stdout, stderr := startDevRun(t, "all sample jobs finished", "--samples", "--nats-url", "nats://127.0.0.1:"+freePort(t))
	out := stdout.String()
	for _, want := range []string{"/metrics\n", "readyz: http://127.0.0.1:", "/readyz", "deploy/grafana/apiops-worker.json", "docs/metrics.md"} {
		if !strings.Contains(out, want) {
			t.Errorf("the banner does not name %q:\n%s", want, out)
		}
	}
	results := 0
	for line := range strings.SplitSeq(out, "\n") {
		subject, data, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(subject, "apiops.results.") {
			continue
		}
		results++
		var r jobs.Result
		if err := json.Unmarshal([]byte(data), &r); err != nil || r.JobID == "" {
			t.Errorf("result line %q is not one JSON result: %v", line, err)
		}
	}
	if results != 6 {
		t.Errorf("%d result lines, want 6:\n%s", results, out)
	}
	if strings.Contains(stderr.String(), `"jobId"`) {
		t.Errorf("a result reached the logs:\n%s", stderr.String())
	}
}

// TestDevRunNATSListensOnNATSURLsPortWhenFree checks that the embedded NATS
// takes NATS_URL's port (4222 by default) when it is free, and otherwise
// another, printing the export NATS_URL line enqueue then needs.
func TestDevRunNATSListensOnNATSURLsPortWhenFree(t *testing.T) {
	t.Run("a free port is taken, with no export line", func(t *testing.T) {
		port := freePort(t)
		stdout, _ := startDevRun(t, "readyz:", "--nats-url", "nats://127.0.0.1:"+port)
		if got := bannerValue(t, stdout.String(), "nats"); got != "nats://127.0.0.1:"+port {
			t.Errorf("NATS at %s, want port %s", got, port)
		}
		if strings.Contains(stdout.String(), "export NATS_URL") {
			t.Errorf("an export line although the port was free:\n%s", stdout)
		}
	})
	t.Run("a taken port moves NATS elsewhere and prints the export line", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		taken := ln.Addr().(*net.TCPAddr).Port
		stdout, _ := startDevRun(t, "readyz:", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", taken))
		got := bannerValue(t, stdout.String(), "nats")
		if got == fmt.Sprintf("nats://127.0.0.1:%d", taken) {
			t.Fatalf("NATS claims the taken port %d", taken)
		}
		if want := "export NATS_URL=" + got + "\n"; !strings.Contains(stdout.String(), want) {
			t.Errorf("no %q line:\n%s", want, stdout)
		}
	})
}

// TestDevRunLeavesTheREADMEsResourcesForItsExamples runs the samples, then
// the jobs of the README's enqueue examples and job reference against the
// same stack: each succeeds, as the samples left their resources alone.
func TestDevRunLeavesTheREADMEsResourcesForItsExamples(t *testing.T) {
	stdout, _ := startDevRun(t, "all sample jobs finished", "--samples", "--nats-url", "nats://127.0.0.1:"+freePort(t))
	_, js := natstest.Dial(t, bannerValue(t, stdout.String(), "nats"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// From the stream's start: the README's past job ran with the samples.
	rc, err := js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pem, err := selfsigned.PEM("README example")
	if err != nil {
		t.Fatal(err)
	}
	cert := jobs.CertificateFields{Alias: "my-alias", CertificateDescription: "Rotated", EnvironmentList: []string{"production", "staging"}, PEMEncodedFile: pem}
	// In the README's order; the credential goes after its public key.
	// Run one after another, as a user types them: the credential's two
	// jobs touch one resource, and the later would supersede the earlier.
	examples := [][]jobs.Job{
		{&jobs.CertificateUpdate{JobID: "readme-certificate-update", ProjectName: "MyProject", CertificateName: "my-certificate", CertificateFields: cert}},
		{&jobs.KeyDelete{JobID: "readme-key-delete", ProjectName: "MyProject", KeyName: "my-key", JWKDeleteAction: jobs.JWKDeleteDelete}},
		{&jobs.CredentialPublicKeyDelete{JobID: "readme-publickey-delete", ProjectName: "MyProject", Username: "api-user"}},
		{&jobs.CredentialDelete{JobID: "readme-credential-delete", ProjectName: "MyProject", Username: "api-user"}},
		{&jobs.CertificateCreate{JobID: "readme-certificate-create", ProjectName: "MyProject", CertificateName: "new-certificate", CertificateFields: cert}},
	}
	// The past job `enqueue result rotate-2026-11-23-my-certificate` reads,
	// published by make run beside the samples, comes first.
	want := map[string]bool{"rotate-2026-11-23-my-certificate": true}
	for _, batch := range examples {
		for _, j := range batch {
			if _, err := jobs.Publish(ctx, js, j); err != nil {
				t.Fatalf("publish %s: %v", j.ID(), err)
			}
			want[j.ID()] = true
		}
		for len(want) > 0 {
			msg, err := rc.Next(jetstream.FetchContext(ctx))
			if err != nil {
				t.Fatalf("no result for %v: %v", want, err)
			}
			var r jobs.Result
			if err := json.Unmarshal(msg.Data(), &r); err != nil || !want[r.JobID] {
				continue
			}
			delete(want, r.JobID)
			if r.Status != jobs.StatusSucceeded {
				t.Errorf("%s: %s (error %+v), want succeeded", r.JobID, r.Status, r.Error)
			}
		}
	}
}

// freePort is a loopback port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
