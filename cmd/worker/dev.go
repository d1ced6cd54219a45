//go:build dev

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

const devToken = "dev-token"

// devEnv is the development setup: an embedded NATS server with JetStream and
// the Apinizer simulator, both on loopback. It is built only with the dev
// tag, so that the production binary and image carry neither (nodev.go).
type devEnv struct {
	cfg     config
	nats    *server.Server
	sim     *apinizertest.Server
	tempDir string
	// pem is the certificate the simulator is seeded with and the sample
	// jobs upload.
	pem string
	// natsMoved is set when NATS_URL's port was taken and the embedded
	// server listens elsewhere: enqueue needs NATS_URL then.
	natsMoved bool
}

func startDev(cfg config, log *slog.Logger) (*devEnv, error) {
	log.Warn("DEVELOPMENT SETUP: embedded NATS server and Apinizer simulator; never use --dev in production")
	env := &devEnv{cfg: cfg}
	dir := cfg.devDataDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "apiops-dev-*"); err != nil {
			return nil, fmt.Errorf("dev: data dir: %w", err)
		}
		env.tempDir = dir
	}
	// The port enqueue and the nats CLI try by default (NATS_URL's), so
	// that the README's commands work as written; another if it is taken.
	port, free := devNATSPort(cfg.nats.URL)
	ns, err := startDevNATS(dir, port)
	if err != nil && port != -1 {
		// Taken between the check and the server's bind.
		free = false
		ns, err = startDevNATS(dir, -1)
	}
	if err != nil {
		env.close()
		return nil, err
	}
	env.nats, env.natsMoved = ns, !free

	pem, err := selfsigned.PEM("apiops sample")
	if err != nil {
		env.close()
		return nil, fmt.Errorf("dev: %w", err)
	}
	env.pem = pem
	env.sim = apinizertest.NewServer(apinizertest.Config{Token: devToken, Logger: log.With("component", "apinizer-simulator")})
	seedSimulator(env.sim, pem)
	if err := seedExpiring(env.sim, time.Now()); err != nil {
		env.close()
		return nil, fmt.Errorf("dev: %w", err)
	}

	env.cfg.nats.URL = ns.ClientURL()
	env.cfg.apinizerURL = env.sim.URL
	env.cfg.apinizerToken, env.cfg.apinizerTokenFile = devToken, ""
	if len(env.cfg.inventory.Projects) == 0 {
		// The inventory watches the sample project, often enough that the
		// dashboard's certificate rows fill within a minute.
		env.cfg.inventory.Projects = []string{sampleProject}
		env.cfg.inventory.Interval = min(env.cfg.inventory.Interval, 30*time.Second)
	}
	log.Warn("DEVELOPMENT SETUP ready", "nats", env.cfg.nats.URL, "apinizer_simulator", env.sim.URL, "nats_data", dir)
	return env, nil
}

// devNATSPort is the port of the first URL in natsURL when it is a
// loopback port that is free now, else -1 (any free port).
func devNATSPort(natsURL string) (port int, free bool) {
	first, _, _ := strings.Cut(natsURL, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.Port() == "" {
		return -1, false
	}
	if port, err = strconv.Atoi(u.Port()); err != nil || port <= 0 {
		return -1, false
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", u.Port()))
	if err != nil {
		return -1, false
	}
	ln.Close()
	return port, true
}

// startDevNATS starts the embedded JetStream server on loopback.
func startDevNATS(dir string, port int) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "apiops-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("dev: nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("dev: nats server not ready within 10s on port %d", port)
	}
	return ns, nil
}

// banner tells, on stdout, where everything is: NATS (and the NATS_URL to
// export when it is not the default), the metrics, readiness, and how to
// see the dashboard.
func (e *devEnv) banner(stdout io.Writer, httpAddr string) {
	fmt.Fprintf(stdout, "DEVELOPMENT SETUP: embedded NATS, Apinizer simulator (token %q)\n", devToken)
	fmt.Fprintf(stdout, "nats: %s\n", e.cfg.nats.URL)
	if e.natsMoved {
		fmt.Fprintf(stdout, "  its usual port was taken; before running enqueue or nats:\n")
		fmt.Fprintf(stdout, "  export NATS_URL=%s\n", e.cfg.nats.URL)
	}
	fmt.Fprintf(stdout, "apinizer simulator: %s\n", e.sim.URL)
	fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", httpAddr)
	fmt.Fprintf(stdout, "readyz: http://%s/readyz (why the worker is not ready, if it is not)\n", httpAddr)
	fmt.Fprintf(stdout, "dashboard: import deploy/grafana/apiops-worker.json into a Grafana whose Prometheus scrapes the metrics above (docs/metrics.md#dashboard)\n")
}

func (e *devEnv) close() {
	if e.sim != nil {
		e.sim.Close()
	}
	if e.nats != nil {
		e.nats.Shutdown()
		e.nats.WaitForShutdown()
	}
	if e.tempDir != "" {
		os.RemoveAll(e.tempDir)
	}
}

// The simulator's project and the resources the sample jobs change.
const (
	sampleProject = "MyProject"
)

// seedSimulator seeds what the sample jobs change (sample-*), and apart from
// them what the README's and docs/jobs.md's examples act on: my-certificate
// (update, apply), my-key (key delete), api-user with a public key
// (credential delete, public key delete), and old-key-1, old-key-2 and
// old-user (examples/jobs.ndjson). The samples leave those alone, so that
// each example works after make run.
func seedSimulator(sim *apinizertest.Server, pem string) {
	sim.AddProject(sampleProject, "production", "staging")
	for _, name := range []string{"sample-certificate", "sample-old-certificate", "my-certificate"} {
		sim.AddCertificate(sampleProject, name, pem)
	}
	for _, name := range []string{"sample-key", "my-key", "old-key-1", "old-key-2"} {
		sim.AddKey(sampleProject, name)
	}
	for _, name := range []string{"sample-user", "sample-old-user", "api-user", "old-user"} {
		sim.AddCredential(sampleProject, name, true)
	}
}

// seedExpiring deploys two certificates close to expiry, one within the
// ApinizerCertificateExpiringSoon alert's 14 days and one within the expiry
// warning only, so that the inventory has rows to show and events to send.
func seedExpiring(sim *apinizertest.Server, now time.Time) error {
	for _, c := range []struct {
		name string
		left time.Duration
	}{{"expiring-soon", 5 * 24 * time.Hour}, {"expiring-this-month", 20 * 24 * time.Hour}} {
		pem, err := selfsigned.PEMValid(c.name+".example.com", now.Add(-365*24*time.Hour), now.Add(c.left))
		if err != nil {
			return err
		}
		for _, env := range []string{"production", "staging"} {
			sim.DeployCertificate(sampleProject, c.name, env, pem)
		}
	}
	return nil
}

// sampleJobs is one job of each kind, on distinct resources so that none
// supersedes another.
func sampleJobs(runID, pem string) []jobs.Job {
	cert := jobs.CertificateFields{
		Alias:                  "sample-alias",
		CertificateDescription: "Sample certificate from make run",
		EnvironmentList:        []string{"production", "staging"},
		PEMEncodedFile:         pem,
	}
	id := func(kind string) string { return "sample-" + runID + "-" + kind }
	return []jobs.Job{
		&jobs.CertificateUpdate{JobID: id("certificate-update"), ProjectName: sampleProject, CertificateName: "sample-certificate", CertificateFields: cert, JWKUpdateAction: jobs.JWKUpdateUpdate, UpdateScope: jobs.UpdateScopeSameProject},
		&jobs.CertificateCreate{JobID: id("certificate-create"), ProjectName: sampleProject, CertificateName: "sample-new-certificate", CertificateFields: cert},
		&jobs.CertificateDelete{JobID: id("certificate-delete"), ProjectName: sampleProject, CertificateName: "sample-old-certificate", JWKDeleteAction: jobs.JWKDeleteNullify},
		&jobs.KeyDelete{JobID: id("key-delete"), ProjectName: sampleProject, KeyName: "sample-key"},
		&jobs.CredentialDelete{JobID: id("credential-delete"), ProjectName: sampleProject, Username: "sample-old-user"},
		&jobs.CredentialPublicKeyDelete{JobID: id("credential-publickey-delete"), ProjectName: sampleProject, Username: "sample-user"},
	}
}

// readmeJobs are the past jobs the README's examples read: a rotation of
// my-certificate, which stays served (`enqueue result`), and a delete of a
// key that does not exist, which Apinizer refuses with 404, so that the
// dead-letter queue holds one record for `enqueue dlq show` and `replay`.
func readmeJobs(pem string) []jobs.Job {
	return []jobs.Job{
		&jobs.CertificateUpdate{JobID: "rotate-2026-11-23-my-certificate", ProjectName: sampleProject, CertificateName: "my-certificate",
			CertificateFields: jobs.CertificateFields{Alias: "my-alias", CertificateDescription: "Rotated", EnvironmentList: []string{"production", "staging"}, PEMEncodedFile: pem}},
		&jobs.KeyDelete{JobID: "delete-2026-11-23-retired-key", ProjectName: sampleProject, KeyName: "retired-key"},
	}
}

// publishSamples publishes one job of each kind and prints each result as it
// arrives, one line each: its subject and the result as compact JSON (the
// logs go to stderr).
func (e *devEnv) publishSamples(ctx context.Context, js jetstream.JetStream, stdout io.Writer, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// An ordered consumer created before publishing sees every result.
	rc, err := streams.WatchResults(ctx, js)
	if err != nil {
		log.Error("samples: results consumer", "err", err)
		return
	}
	samples := sampleJobs(time.Now().UTC().Format("20060102T150405"), e.pem)
	// want maps each job awaited to whether its result is printed: the
	// README's past jobs are not samples, but are awaited too, so that
	// their result and dead letter exist once the samples have finished.
	want := make(map[string]bool, len(samples)+2)
	for _, job := range readmeJobs(e.pem) {
		if _, err := jobs.Publish(ctx, js, job); err != nil {
			log.Error("samples: publish", "job_id", job.ID(), "err", err)
			return
		}
		want[job.ID()] = false
	}
	for _, job := range samples {
		if _, err := jobs.Publish(ctx, js, job); err != nil {
			log.Error("samples: publish", "job_id", job.ID(), "err", err)
			return
		}
		want[job.ID()] = true
	}
	fmt.Fprintf(stdout, "published %d sample jobs; results:\n", len(samples))
	for len(want) > 0 {
		msg, err := rc.Next(jetstream.FetchContext(ctx))
		if err != nil {
			log.Error("samples: waiting for results", "missing", len(want), "err", err)
			return
		}
		var r jobs.Result
		if json.Unmarshal(msg.Data(), &r) != nil {
			continue
		}
		printed, ok := want[r.JobID]
		if !ok {
			continue
		}
		delete(want, r.JobID)
		if printed {
			fmt.Fprintf(stdout, "%s %s\n", msg.Subject(), msg.Data())
		}
	}
	fmt.Fprintln(stdout, "all sample jobs finished; the worker keeps serving until Ctrl-C")
}
