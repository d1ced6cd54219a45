package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// applyBurnDown is scenario 5: n certificate.apply jobs, each rotating a
// certificate of its own that the simulator serves with another PEM, so
// that every job reads, writes (PUT) and reads back; the simulator answers
// every call after latency.
func (b *bench) applyBurnDown(ctx context.Context, n, concurrency int, latency time.Duration) (burn, error) {
	oldPEM, err := selfsigned.PEM("bench-old.example")
	if err != nil {
		return burn{}, err
	}
	newPEM, err := selfsigned.PEM("bench-new.example")
	if err != nil {
		return burn{}, err
	}
	s, err := newStack(b.tmp, 0, 0)
	if err != nil {
		return burn{}, err
	}
	defer s.close()
	s.sim = apinizertest.NewServer(apinizertest.Config{Token: token, Latency: latency, LogLimit: 100})
	s.sim.AddProject(project, "production", "staging")
	for i := range n {
		s.sim.AddCertificate(project, certificateName(i), oldPEM)
	}
	s.job = func(prefix string, i int) jobs.Job {
		return &jobs.CertificateApply{CertificateUpdate: jobs.CertificateUpdate{
			JobID: jobID(prefix, i), ProjectName: project, CertificateName: certificateName(i),
			CertificateFields: jobs.CertificateFields{
				Alias: certificateName(i), CertificateDescription: "bench rotation",
				EnvironmentList: []string{"production", "staging"}, PEMEncodedFile: newPEM,
			},
			JWKUpdateAction: jobs.JWKUpdateUpdate,
		}}
	}
	out, err := b.burnDownOn(ctx, s, "worker", n, concurrency, latency)
	if err != nil {
		return out, err
	}
	// Every job wrote once: no apply found its certificate live already.
	if writes := sumValues(s.sim.Applied()); writes != n {
		return out, fmt.Errorf("apply: %d certificate writes for %d jobs, want one each", writes, n)
	}
	return out, nil
}

func certificateName(i int) string { return fmt.Sprintf("cert-%06d", i) }

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// applyIdealCalls is the calls per apply job the target counts: a
// read and a write. The worker also reads the certificate back after the
// write, which the measured calls per job include.
const applyIdealCalls = 2

// applyTarget is scenario 5's target: the calls keep at least 90% of the
// concurrency busy. The figure also gives jobs/s against the two-call ideal.
func applyTarget(a burn) target {
	twoCall := float64(a.Concurrency) / (applyIdealCalls * a.LatencyMs / 1000)
	return target{
		Name: fmt.Sprintf("certificate.apply, %.0f ms per call, concurrency %d: concurrency use", a.LatencyMs, a.Concurrency), Value: a.ConcurrencyUse,
		Want: ">= 0.90", Met: a.ConcurrencyUse >= 0.90,
		Figure: fmt.Sprintf("%.0f%% (%.2f calls/job; %.0f jobs/s = %.0f%% of %.0f, the two-call ideal)",
			100*a.ConcurrencyUse, a.CallsPerJob, a.JobsPerSec, 100*a.JobsPerSec/twoCall, twoCall),
	}
}

// apinizerCalls is the worker's Apinizer calls so far: the sum of
// apiops_apinizer_request_duration_seconds_count over its labels.
func apinizerCalls(metricsAddr string) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("worker metrics: %w", err)
	}
	defer resp.Body.Close()
	var calls float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiops_apinizer_request_duration_seconds_count") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("worker metrics: %q: %w", line, err)
		}
		calls += v
	}
	return calls, sc.Err()
}

// concurrencies reads a comma-separated list of worker concurrencies.
func concurrencies(flagName, v string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > 4096 {
			return nil, fmt.Errorf("%s: %q is not 1 to 4096", flagName, f)
		}
		out = append(out, c)
	}
	return out, nil
}
