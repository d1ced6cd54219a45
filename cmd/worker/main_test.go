//go:build dev

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/capture"
)

// TestDevRunPrintsSixSampleResultsAndStopsCleanly is `make run`: the
// development setup publishes one job of each kind, prints their results,
// and stops without error when interrupted.
func TestDevRunPrintsSixSampleResultsAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr capture.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dev", "--samples", "--metrics-addr", "127.0.0.1:0", "--dev-data-dir", t.TempDir()},
			func(string) string { return "" }, &stdout, &stderr)
	}()

	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(stdout.String(), "all sample jobs finished") {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\nstderr:\n%s", err, stderr.String())
		case <-deadline.C:
			t.Fatalf("no six results within 60s\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		case <-tick.C:
		}
	}
	out := stdout.String()
	// Results are one compact JSON line each (issue 21), no longer
	// indented over 27 lines: the spaces after the colons went.
	if n := strings.Count(out, `"status":"succeeded"`); n != 6 {
		t.Errorf("%d succeeded results, want 6:\n%s", n, out)
	}
	for _, s := range []string{"certificate.update", "certificate.create", "certificate.delete", "key.delete", "credential.delete", "credential.publickey.delete"} {
		if !strings.Contains(out, "apiops.results."+s+" {") {
			t.Errorf("no result on apiops.results.%s", s)
		}
	}
	if !strings.Contains(out, "metrics: http://127.0.0.1:") {
		t.Errorf("the metrics address is not printed:\n%s", out)
	}
	if strings.Contains(out, "BEGIN CERTIFICATE") || strings.Contains(stderr.String(), "BEGIN CERTIFICATE") {
		t.Error("a certificate was printed")
	}

	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after interrupt: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30s of the interrupt")
	}
	if !strings.Contains(stderr.String(), "DEVELOPMENT SETUP") {
		t.Error("the development setup is not announced loudly")
	}
}
