package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/inventory"
	"github.com/apiops-worker/apiops-worker/streams"
)

const oneDay = 24 * time.Hour

// TestCertificatesExpiringListsTheInventorysLatestRound runs the inventory
// against the simulator and a real NATS server, then lists from NATS alone:
// the command is given no Apinizer token or URL.
func TestCertificatesExpiringListsTheInventorysLatestRound(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	getenv := func(k string) string {
		if k == "NATS_URL" {
			return ns.ClientURL()
		}
		return ""
	}
	enqueue := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, getenv, strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), err
	}

	if err := streams.ProvisionInventory(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := enqueue("certificates", "expiring"); !errors.Is(err, inventory.ErrNoSnapshot) {
		t.Fatalf("before any round: err %v (stderr %q), want one saying there is no snapshot yet", err, stderr)
	}

	const token = "certificates-test-token"
	sim := apinizertest.NewServer(apinizertest.Config{Token: token})
	t.Cleanup(sim.Close)
	sim.AddProject("Shop", "production", "staging")
	sim.AddProject("Bank", "production")
	now := time.Now().UTC().Truncate(time.Second)
	deploy := func(project, name, env string, validFor time.Duration) {
		pemText, err := selfsigned.PEMValid(name+"."+env+".example", now.Add(-100*oneDay), now.Add(validFor))
		if err != nil {
			t.Fatal(err)
		}
		sim.DeployCertificate(project, name, env, pemText)
	}
	deploy("Shop", "api-tls", "production", 5*oneDay-time.Hour)
	deploy("Shop", "api-tls", "staging", 400*oneDay)
	deploy("Shop", "client-ca", "production", 20*oneDay-time.Hour)
	deploy("Bank", "mtls", "production", -2*oneDay)
	deploy("Bank", "edge", "production", 45*oneDay-time.Hour)

	client, err := executor.New(executor.Config{BaseURL: sim.URL, Token: func() (string, error) { return token, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	inv, err := inventory.New(inventory.Config{Projects: []string{"Shop", "Bank"}, Interval: time.Minute}, client, js, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- inv.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("inventory Run = %v", err)
		}
	})
	poll.Until(t, 10*time.Second, "the inventory's first snapshot", func() bool {
		_, err := inventory.ReadSnapshot(ctx, js)
		return err == nil
	})

	header := "DAYS LEFT  PROJECT  CERTIFICATE  ENVIRONMENT  SUBJECT                           NOT AFTER"
	row := func(days, project, cert, env string, validFor time.Duration) string {
		return strings.Join([]string{days, project, cert, env, "CN=" + cert + "." + env + ".example", now.Add(validFor).Format(time.RFC3339)}, "|")
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"the default window is 30 days, expired ones first", nil, []string{
			row("-2", "Bank", "mtls", "production", -2*oneDay),
			row("5", "Shop", "api-tls", "production", 5*oneDay-time.Hour),
			row("20", "Shop", "client-ca", "production", 20*oneDay-time.Hour),
		}},
		{"a window in days takes the later one in", []string{"--within", "60d"}, []string{
			row("-2", "Bank", "mtls", "production", -2*oneDay),
			row("5", "Shop", "api-tls", "production", 5*oneDay-time.Hour),
			row("20", "Shop", "client-ca", "production", 20*oneDay-time.Hour),
			row("45", "Bank", "edge", "production", 45*oneDay-time.Hour),
		}},
		{"a window in hours is a Go duration", []string{"--within", "240h"}, []string{
			row("-2", "Bank", "mtls", "production", -2*oneDay),
			row("5", "Shop", "api-tls", "production", 5*oneDay-time.Hour),
		}},
		{"plain days are days", []string{"--within", "1"}, []string{
			row("-2", "Bank", "mtls", "production", -2*oneDay),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := enqueue(append([]string{"certificates", "expiring"}, tt.args...)...)
			if err != nil {
				t.Fatalf("err %v, stderr %q", err, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if strings.Join(strings.Fields(lines[0]), " ") != strings.Join(strings.Fields(header), " ") {
				t.Errorf("header %q, want %q", lines[0], header)
			}
			var got []string
			for _, l := range lines[1:] {
				got = append(got, strings.Join(strings.Fields(l), "|"))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if !strings.Contains(stderr, "inventory of ") || strings.Contains(stderr, "warning") {
				t.Errorf("stderr %q, want the snapshot's time and no warning", stderr)
			}
		})
	}

	for _, bad := range []string{"30x", "thirty", "-5d", "0", "1.5d", "30days"} {
		t.Run("--within "+bad+" is refused, saying what unit it wants", func(t *testing.T) {
			_, stderr, err := enqueue("certificates", "expiring", "--within", bad)
			if err == nil || errors.Is(err, flag.ErrHelp) || exitCode(err, &bytes.Buffer{}) != 2 {
				t.Fatalf("err %v, want a usage error", err)
			}
			if !strings.Contains(err.Error()+stderr, "days (30d or 30) or a duration with its unit (720h)") {
				t.Errorf("err %v, stderr %q: want the units it takes", err, stderr)
			}
		})
	}
	t.Run("another verb is refused", func(t *testing.T) {
		if _, _, err := enqueue("certificates", "expired"); err == nil || !strings.Contains(err.Error(), "want expiring") {
			t.Errorf("err %v, want one naming expiring", err)
		}
	})
}
