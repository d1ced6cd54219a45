// Command bench measures the worker end to end, as `make bench` runs it: an
// embedded nats-server (JetStream, file storage) and the Apinizer simulator
// on loopback, the worker and the enqueue CLI built and run as processes of
// their own, and a plain nats.go consumer as the baseline. It prints a table
// of the figures against their targets and writes them as JSON.
//
// Scenarios, each on a fresh server:
//
//  1. baseline: a plain JetStream consumer burns down a full stream doing
//     only the message work (consume, publish a small result, ack);
//  2. the worker burns down the same, against a zero-latency simulator;
//     then, with the worker running, a paced 1,000 jobs/s load for the
//     publish-to-result p99;
//  3. the worker at 100 ms simulator latency and concurrency 64, 256, 1024;
//  4. enqueue publishing a 50,000-job NDJSON file;
//  5. the worker on certificate.apply jobs at 100 ms per call.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/gomod"
	"github.com/apiops-worker/apiops-worker/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if os.Getenv(roleEnv) == "baseline" {
		err = runBaseline(ctx, os.Getenv, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the bench's flags.
type options struct {
	jobs          int
	concurrency   int
	latencyJobs   int
	latencyWaves  int
	latency       time.Duration
	concurrencies []int
	pacedRate     float64
	pacedFor      time.Duration
	enqueueJobs   int
	applyJobs     int
	applyConc     []int
	out           string
	timeout       time.Duration
	// workerProfile, when set, is where the worker's CPU profile during the
	// first worker burn-down is written.
	workerProfile string
	// workerHeapProfile, when set, is where the worker's heap profile in the
	// middle of the first worker burn-down is written (its goroutines go to
	// the same name plus .goroutines).
	workerHeapProfile string
	// only, when set, names the scenarios to run (1, 2, 2b, 3, 4).
	only map[string]bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.jobs, "jobs", 20000, "jobs of the baseline and zero-latency burn-downs")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrency of the baseline and the zero-latency worker")
	fs.IntVar(&o.latencyJobs, "latency-jobs", 5000, "fewest jobs of each latency run")
	fs.IntVar(&o.latencyWaves, "latency-waves", 40, "fewest waves of concurrency calls of each latency run: it gets max(-latency-jobs, concurrency × waves) jobs")
	fs.DurationVar(&o.latency, "latency", 100*time.Millisecond, "simulator latency of the latency runs")
	conc := fs.String("latency-concurrency", "64,256,1024", "worker concurrencies of the latency runs")
	fs.Float64Var(&o.pacedRate, "paced-rate", 1000, "offered jobs/s of the paced run")
	fs.DurationVar(&o.pacedFor, "paced-for", 5*time.Second, "length of the paced run")
	fs.IntVar(&o.enqueueJobs, "enqueue-jobs", 50000, "jobs enqueue publishes")
	fs.IntVar(&o.applyJobs, "apply-jobs", 5000, "certificate.apply jobs of scenario 5 (at -latency per call)")
	applyConc := fs.String("apply-concurrency", "64,256", "worker concurrencies of scenario 5")
	fs.StringVar(&o.out, "out", "bench/results/latest.json", "JSON report, relative to the module root")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "longest wait for one scenario's results")
	fs.StringVar(&o.workerProfile, "worker-profile", "", "write the worker's CPU profile of the first worker burn-down that runs (scenario 2, or 3 with -only 3) to this file")
	fs.StringVar(&o.workerHeapProfile, "worker-heap-profile", "", "write the worker's heap profile, halfway through the first worker burn-down that runs, to this file, and its goroutines grouped by stack to the same name plus .goroutines")
	only := fs.String("only", "", "comma-separated scenarios to run (1, 1b, 2, 2b, 3, 4, 5); default all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.concurrencies, err = concurrencies("-latency-concurrency", *conc); err != nil {
		return err
	}
	if o.applyConc, err = concurrencies("-apply-concurrency", *applyConc); err != nil {
		return err
	}

	if *only != "" {
		o.only = map[string]bool{}
		for _, f := range strings.Split(*only, ",") {
			switch f = strings.TrimSpace(f); f {
			case "1", "1b", "2", "2b", "3", "4", "5":
				o.only[f] = true
			default:
				return fmt.Errorf("-only: unknown scenario %q (want 1, 1b, 2, 2b, 3, 4 or 5)", f)
			}
		}
	}

	root, err := gomod.Root()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "apiops-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b := &bench{tmp: tmp, self: self, timeout: o.timeout, log: stderr, workerProfile: o.workerProfile,
		workerHeapProfile: o.workerHeapProfile,
		workerBin:         filepath.Join(tmp, "bin", "worker"), enqueueBin: filepath.Join(tmp, "bin", "enqueue")}
	fmt.Fprintln(stderr, "bench: building cmd/worker and cmd/enqueue")
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(tmp, "bin")+"/", "./cmd/worker", "./cmd/enqueue")
	build.Dir, build.Stdout, build.Stderr = root, stderr, stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}

	rep := report{
		Date: time.Now().UTC().Format(time.RFC3339), GoVersion: runtime.Version(),
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	step := func(name string, f func() error) error {
		fmt.Fprintf(stderr, "bench: %s\n", name)
		t0 := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stderr, "bench:   done in %s\n", time.Since(t0).Round(time.Millisecond))
		return ctx.Err()
	}
	type scenario struct {
		id, name string
		f        func() error
	}
	// The worker holds more jobs than its concurrency, which bounds the
	// Apinizer calls (worker.Config.MaxJobs): the baseline and the ceiling
	// get as many messages in flight.
	held := worker.Config{Concurrency: o.concurrency}.WithDefaults().MaxJobs
	steps := []scenario{
		{"1", fmt.Sprintf("1. baseline consumer, %d jobs, concurrency %d", o.jobs, held), func() (err error) {
			rep.Baseline, err = b.burnDown(ctx, "baseline", o.jobs, held, 0)
			return err
		}},
		{"1b", fmt.Sprintf("1b. ceiling: the baseline plus one Apinizer call per job, %d jobs, concurrency %d", o.jobs, held), func() (err error) {
			rep.Ceiling, err = b.burnDown(ctx, "ceiling", o.jobs, held, 0)
			return err
		}},
		{"2", fmt.Sprintf("2. worker, zero latency, %d jobs, concurrency %d", o.jobs, o.concurrency), func() (err error) {
			rep.ZeroLatency, err = b.burnDown(ctx, "worker", o.jobs, o.concurrency, 0)
			return err
		}},
		{"2b", fmt.Sprintf("2b. worker, zero latency, paced %.0f jobs/s for %s", o.pacedRate, o.pacedFor), func() (err error) {
			rep.Paced, err = b.pacedLoad(ctx, int(o.pacedRate*o.pacedFor.Seconds()), o.concurrency, o.pacedRate)
			return err
		}},
	}
	for _, c := range o.concurrencies {
		// A run of a few waves is mostly its ramp-up and its last, partial
		// wave: enough waves make it last several seconds at any
		// concurrency (four at 40 waves of 100 ms).
		n := max(o.latencyJobs, c*o.latencyWaves)
		steps = append(steps, scenario{"3", fmt.Sprintf("3. worker, %s latency, %d jobs, concurrency %d", o.latency, n, c), func() error {
			r, err := b.burnDown(ctx, "worker", n, c, o.latency)
			rep.Latency = append(rep.Latency, r)
			return err
		}})
	}
	steps = append(steps, scenario{"4", fmt.Sprintf("4. enqueue publish, %d jobs", o.enqueueJobs), func() (err error) {
		rep.Enqueue, err = b.enqueue(ctx, o.enqueueJobs)
		return err
	}})
	for _, c := range o.applyConc {
		steps = append(steps, scenario{"5", fmt.Sprintf("5. worker, certificate.apply, %s per call, %d jobs, concurrency %d", o.latency, o.applyJobs, c), func() error {
			r, err := b.applyBurnDown(ctx, o.applyJobs, c, o.latency)
			rep.Apply = append(rep.Apply, r)
			return err
		}})
	}
	for _, s := range steps {
		if o.only != nil && !o.only[s.id] {
			continue
		}
		if err := step(s.name, s.f); err != nil {
			return err
		}
	}

	if rep.Baseline.JobsPerSec > 0 {
		rep.ZeroLatencyRatioToBaseline = rep.ZeroLatency.JobsPerSec / rep.Baseline.JobsPerSec
		rep.CeilingRatioToBaseline = rep.Ceiling.JobsPerSec / rep.Baseline.JobsPerSec
	}
	if rep.Ceiling.JobsPerSec > 0 {
		rep.ZeroLatencyRatioToCeiling = rep.ZeroLatency.JobsPerSec / rep.Ceiling.JobsPerSec
	}
	rep.Targets = targets(&rep, o)
	printTable(stdout, &rep)

	path := o.out
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", path)
	return nil
}
