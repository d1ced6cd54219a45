package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// burn is the outcome of burning a full jobs stream down.
type burn struct {
	Consumer    string  `json:"consumer"`
	Jobs        int     `json:"jobs"`
	Concurrency int     `json:"concurrency"`
	LatencyMs   float64 `json:"simulatorLatencyMs"`
	// Seconds runs from the consumer reporting ready to the last result.
	Seconds    float64 `json:"seconds"`
	JobsPerSec float64 `json:"jobsPerSec"`
	// SteadyJobsPerSec leaves out the first and the last tenth of the
	// results: the ramp-up and the tail.
	SteadyJobsPerSec float64 `json:"steadyJobsPerSec"`
	// FirstResultMs is the time from ready to the first result.
	FirstResultMs float64 `json:"firstResultMs"`
	// Publish-to-result times; jobs waited in the full stream, so these are
	// mostly queueing.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	// CPU of the consumer process from ready to the last result.
	CPUSeconds     float64 `json:"cpuSeconds"`
	CPUSecPer1000  float64 `json:"cpuSecondsPer1000Jobs"`
	PeakRSSMiB     float64 `json:"peakRssMiB"`
	MaxGoroutines  int     `json:"maxGoroutines,omitempty"`
	NotSucceeded   int     `json:"notSucceeded"`
	ServerCPUPer1k float64 `json:"benchAndServerCpuSecondsPer1000Jobs"`
	// IdealJobsPerSec is concurrency / latency, for latency-bound runs.
	IdealJobsPerSec float64 `json:"idealJobsPerSec,omitempty"`
	RatioToIdeal    float64 `json:"ratioToIdeal,omitempty"`
	// CallsPerJob is the worker's Apinizer calls (every attempt, from its
	// request histogram) per job.
	CallsPerJob float64 `json:"apinizerCallsPerJob,omitempty"`
	// LedgerWritesPerJob is the writes the ledger bucket stored during the
	// run (its stream's last sequence grows by one a write) per job.
	LedgerWritesPerJob float64 `json:"ledgerWritesPerJob,omitempty"`
	// ConcurrencyUse is the share of concurrency × time spent in calls:
	// jobs/s × calls per job × latency ÷ concurrency, for latency-bound runs.
	ConcurrencyUse float64 `json:"concurrencyUse,omitempty"`
}

// paced is the outcome of a steady offered load against a running worker.
type paced struct {
	Jobs         int     `json:"jobs"`
	Concurrency  int     `json:"concurrency"`
	OfferedRate  float64 `json:"offeredJobsPerSec"`
	AchievedRate float64 `json:"achievedOfferJobsPerSec"`
	P50Ms        float64 `json:"p50Ms"`
	P99Ms        float64 `json:"p99Ms"`
	MaxMs        float64 `json:"maxMs"`
	NotSucceeded int     `json:"notSucceeded"`
	CPUSecPer1k  float64 `json:"cpuSecondsPer1000Jobs"`
}

// enqueueRun is the outcome of `enqueue publish` on an NDJSON file.
type enqueueRun struct {
	Jobs       int     `json:"jobs"`
	FileMiB    float64 `json:"fileMiB"`
	Seconds    float64 `json:"seconds"`
	JobsPerSec float64 `json:"jobsPerSec"`
	Stored     uint64  `json:"storedInStream"`
}

// bench holds what every scenario needs.
type bench struct {
	tmp        string
	self       string
	workerBin  string
	enqueueBin string
	timeout    time.Duration
	log        io.Writer
	// workerProfile and workerHeapProfile: see options.
	workerProfile     string
	workerHeapProfile string
	profiled          bool
}

// startConsumer starts the worker, the baseline consumer or the ceiling
// consumer on s and waits until it is ready to consume.
func (b *bench) startConsumer(s *stack, kind string, concurrency int, profile bool) (*proc, error) {
	switch kind {
	case "worker":
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		env := []string{
			"NATS_URL=" + s.url(),
			"APINIZER_URL=" + s.sim.URL,
			"APINIZER_TOKEN=" + token,
			"METRICS_ADDR=" + addr,
			"WORKER_CONCURRENCY=" + strconv.Itoa(concurrency),
			"LOG_LEVEL=warn",
		}
		pprofAddr := ""
		if profile {
			if pprofAddr, err = freeAddr(); err != nil {
				return nil, err
			}
			env = append(env, "WORKER_PPROF=true", "WORKER_PPROF_ADDR="+pprofAddr)
		}
		p, err := start(b.tmp, "worker", b.workerBin, env, io.Discard)
		if err != nil {
			return nil, err
		}
		p.metricsAddr, p.pprofAddr = addr, pprofAddr
		if err := p.waitHTTPReady(20 * time.Second); err != nil {
			p.kill()
			return nil, err
		}
		p.sampleGoroutines(200 * time.Millisecond)
		return p, nil
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		env := []string{roleEnv + "=baseline", "NATS_URL=" + s.url(), "BENCH_CONCURRENCY=" + strconv.Itoa(concurrency)}
		if kind == "ceiling" {
			env = append(env, "BENCH_APINIZER_URL="+s.sim.URL)
		}
		p, err := start(b.tmp, "baseline", b.self, env, w)
		w.Close()
		if err != nil {
			r.Close()
			return nil, err
		}
		if err := p.waitLineReady(r, 20*time.Second); err != nil {
			p.kill()
			return nil, err
		}
		return p, nil
	}
}

// burnDown fills a fresh jobs stream with n key deletes, then starts the
// consumer and times it until the n-th result.
func (b *bench) burnDown(ctx context.Context, kind string, n, concurrency int, latency time.Duration) (burn, error) {
	s, err := newStack(b.tmp, n, latency)
	if err != nil {
		return burn{}, err
	}
	defer s.close()
	return b.burnDownOn(ctx, s, kind, n, concurrency, latency)
}

// burnDownOn is burnDown on a stack prepared for its jobs (s.job).
func (b *bench) burnDownOn(ctx context.Context, s *stack, kind string, n, concurrency int, latency time.Duration) (burn, error) {
	out := burn{Consumer: kind, Jobs: n, Concurrency: concurrency, LatencyMs: float64(latency) / float64(time.Millisecond)}
	prefix := fmt.Sprintf("%s-c%d-l%d", kind, concurrency, latency.Milliseconds())
	if err := s.publishAll(ctx, prefix, n); err != nil {
		return out, err
	}
	var firstAt time.Time
	w, err := s.watch(ctx, prefix, n, func() { firstAt = time.Now() })
	if err != nil {
		return out, err
	}
	defer w.stop()
	ledgerSeq0, err := s.ledgerLastSeq(ctx)
	if err != nil {
		return out, err
	}
	selfCPU0, _ := cpuSeconds(os.Getpid())
	// The first worker burn-down that runs is profiled.
	profile := kind == "worker" && (b.workerProfile != "" || b.workerHeapProfile != "") && !b.profiled
	b.profiled = b.profiled || profile
	p, err := b.startConsumer(s, kind, concurrency, profile)
	if err != nil {
		return out, err
	}
	defer p.kill()
	var profiled, heapProfiled chan error
	if profile && b.workerProfile != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- p.cpuProfile(2*time.Second, b.workerProfile) }()
	}
	if profile && b.workerHeapProfile != "" {
		heapProfiled = make(chan error, 1)
		go func() { heapProfiled <- b.heapProfile(p, w) }()
	}
	waitErr := w.wait(b.timeout)
	if profiled != nil {
		if err := <-profiled; err != nil {
			return out, fmt.Errorf("worker profile: %w", err)
		}
		fmt.Fprintf(b.log, "bench:   worker CPU profile in %s\n", b.workerProfile)
	}
	if heapProfiled != nil {
		if err := <-heapProfiled; err != nil {
			return out, fmt.Errorf("worker heap profile: %w", err)
		}
		fmt.Fprintf(b.log, "bench:   worker heap profile in %s, goroutines in %s.goroutines\n", b.workerHeapProfile, b.workerHeapProfile)
	}
	cpu, rss, err := p.measure()
	if err != nil {
		return out, p.exitedOr(err)
	}
	selfCPU1, _ := cpuSeconds(os.Getpid())
	if waitErr != nil {
		return out, p.exitedOr(waitErr)
	}
	if kind == "worker" {
		calls, err := apinizerCalls(p.metricsAddr)
		if err != nil {
			return out, err
		}
		out.CallsPerJob = calls / float64(n)
		ledgerSeq1, err := s.ledgerLastSeq(ctx)
		if err != nil {
			return out, err
		}
		out.LedgerWritesPerJob = float64(ledgerSeq1-ledgerSeq0) / float64(n)
	}
	w.mu.Lock()
	last, notOK := w.last, w.failed
	w.mu.Unlock()
	lat := w.latencies(s)

	out.Seconds = last.Sub(p.readyAt).Seconds()
	out.JobsPerSec = float64(n) / out.Seconds
	out.SteadyJobsPerSec = w.steadyRate()
	out.FirstResultMs = float64(firstAt.Sub(p.readyAt)) / float64(time.Millisecond)
	out.P50Ms, out.P99Ms = quantile(lat, 0.50), quantile(lat, 0.99)
	out.CPUSeconds = cpu
	out.CPUSecPer1000 = cpu / float64(n) * 1000
	out.PeakRSSMiB = float64(rss) / (1 << 20)
	out.MaxGoroutines = p.maxGoroutines
	out.NotSucceeded = notOK
	// The bench process's CPU includes the embedded server, the result
	// watcher and the readiness poll; the prefill is before the window.
	out.ServerCPUPer1k = (selfCPU1 - selfCPU0) / float64(n) * 1000
	if latency > 0 {
		out.IdealJobsPerSec = float64(concurrency) / latency.Seconds()
		out.RatioToIdeal = out.JobsPerSec / out.IdealJobsPerSec
		// Each call holds one of the concurrency slots for the latency.
		out.ConcurrencyUse = out.JobsPerSec * out.CallsPerJob * latency.Seconds() / float64(concurrency)
	}
	return out, nil
}

// heapProfile saves the worker's heap profile, and its goroutines grouped by
// stack, once half of w's results have arrived: in the middle of the run,
// with every handler and connection busy.
func (b *bench) heapProfile(p *proc, w *watcher) error {
	select {
	case <-w.half:
	case <-time.After(b.timeout):
		return errors.New("half the results did not arrive")
	}
	if err := p.profile("heap?debug=1", 30*time.Second, b.workerHeapProfile); err != nil {
		return err
	}
	return p.profile("goroutine?debug=1", 30*time.Second, b.workerHeapProfile+".goroutines")
}

// pacedLoad starts the worker on an empty stream, then offers n jobs at rate
// per second and measures publish-to-result times.
func (b *bench) pacedLoad(ctx context.Context, n, concurrency int, rate float64) (paced, error) {
	out := paced{Jobs: n, Concurrency: concurrency, OfferedRate: rate}
	s, err := newStack(b.tmp, n, 0)
	if err != nil {
		return out, err
	}
	defer s.close()
	prefix := "paced"
	w, err := s.watch(ctx, prefix, n, nil)
	if err != nil {
		return out, err
	}
	defer w.stop()
	p, err := b.startConsumer(s, "worker", concurrency, false)
	if err != nil {
		return out, err
	}
	defer p.kill()
	if out.AchievedRate, err = s.publishPaced(ctx, prefix, n, rate); err != nil {
		return out, err
	}
	waitErr := w.wait(b.timeout)
	cpu, _, err := p.measure()
	if err != nil {
		return out, p.exitedOr(err)
	}
	if waitErr != nil {
		return out, waitErr
	}
	lat := w.latencies(s)
	out.P50Ms, out.P99Ms, out.MaxMs = quantile(lat, 0.50), quantile(lat, 0.99), lat[len(lat)-1]
	out.NotSucceeded = w.failed
	out.CPUSecPer1k = cpu / float64(n) * 1000
	return out, nil
}

// enqueue times `enqueue publish --subject apiops.key.delete FILE` with n
// jobs against a fresh server with no worker.
func (b *bench) enqueue(ctx context.Context, n int) (enqueueRun, error) {
	out := enqueueRun{Jobs: n}
	s, err := newStack(b.tmp, 0, 0)
	if err != nil {
		return out, err
	}
	defer s.close()
	path, err := ndjson(b.tmp, "enqueue", n)
	if err != nil {
		return out, err
	}
	if fi, err := os.Stat(path); err == nil {
		out.FileMiB = float64(fi.Size()) / (1 << 20)
	}
	cmd := exec.CommandContext(ctx, b.enqueueBin, "publish", "--subject", "apiops.key.delete", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NATS_URL=" + s.url()}
	cmd.Stdout = io.Discard
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return out, fmt.Errorf("enqueue: %w: %s", err, stderr.String())
	}
	out.Seconds = time.Since(t0).Seconds()
	out.JobsPerSec = float64(n) / out.Seconds
	st, err := s.js.Stream(ctx, "APIOPS_JOBS")
	if err != nil {
		return out, err
	}
	out.Stored = st.CachedInfo().State.Msgs
	return out, nil
}
