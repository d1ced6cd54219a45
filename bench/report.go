package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// report is the JSON written to bench/results/latest.json.
type report struct {
	Date       string `json:"date"`
	GoVersion  string `json:"goVersion"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`

	Baseline burn `json:"baseline"`
	// Ceiling is the baseline plus one HTTP call to the simulator per job:
	// the most any worker that calls Apinizer can reach.
	Ceiling                    burn       `json:"ceiling"`
	CeilingRatioToBaseline     float64    `json:"ceilingRatioToBaseline"`
	ZeroLatency                burn       `json:"zeroLatency"`
	ZeroLatencyRatioToBaseline float64    `json:"zeroLatencyRatioToBaseline"`
	ZeroLatencyRatioToCeiling  float64    `json:"zeroLatencyRatioToCeiling"`
	Paced                      paced      `json:"paced"`
	Latency                    []burn     `json:"latency"`
	Enqueue                    enqueueRun `json:"enqueue"`
	Apply                      []burn     `json:"apply"`
	Targets                    []target   `json:"targets"`
}

// target is one of the targets, met or not.
type target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Want   string  `json:"want"`
	Met    bool    `json:"met"`
	Figure string  `json:"figure"`
}

// targets lists the targets of the scenarios that ran.
func targets(r *report, o options) []target {
	var ts []target
	if r.Baseline.Jobs > 0 && r.ZeroLatency.Jobs > 0 {
		figure := fmt.Sprintf("%.0f%% (%.0f / %.0f jobs/s)", 100*r.ZeroLatencyRatioToBaseline, r.ZeroLatency.JobsPerSec, r.Baseline.JobsPerSec)
		if r.Ceiling.Jobs > 0 {
			figure += fmt.Sprintf("; ceiling %.0f%%", 100*r.CeilingRatioToBaseline)
		}
		ts = append(ts, target{
			Name: "zero-latency throughput / baseline", Value: r.ZeroLatencyRatioToBaseline,
			Want: ">= 0.25", Met: r.ZeroLatencyRatioToBaseline >= 0.25, Figure: figure,
		})
	}
	if w := r.ZeroLatency.LedgerWritesPerJob; w > 0 {
		// The stranded-jobs check's lease, in the same bucket, adds a few
		// writes a run: under 0.01 a job at the bench's sizes.
		ts = append(ts, target{
			Name: "ledger writes per job, zero latency", Value: w,
			Want: "<= 2", Met: w < 2.01,
			Figure: fmt.Sprintf("%.3f", w),
		})
	}
	for _, l := range r.Latency {
		switch l.Concurrency {
		case 256:
			ts = append(ts, target{
				Name: fmt.Sprintf("%.0f ms latency, concurrency 256: throughput / ideal", l.LatencyMs), Value: l.RatioToIdeal,
				Want: ">= 0.95", Met: l.RatioToIdeal >= 0.95,
				Figure: fmt.Sprintf("%.0f%% (%.0f / %.0f jobs/s; steady %.0f%%)", 100*l.RatioToIdeal, l.JobsPerSec, l.IdealJobsPerSec, 100*l.SteadyJobsPerSec/l.IdealJobsPerSec),
			})
		case 1024:
			ts = append(ts, target{
				Name: fmt.Sprintf("%.0f ms latency, concurrency 1024: worker peak RSS", l.LatencyMs), Value: l.PeakRSSMiB,
				Want: "< 100 MiB", Met: l.PeakRSSMiB < 100,
				Figure: fmt.Sprintf("%.1f MiB", l.PeakRSSMiB),
			})
		}
	}
	if r.Paced.Jobs > 0 {
		ts = append(ts, target{
			Name: fmt.Sprintf("p99 publish-to-result, zero latency, %.0f jobs/s offered", o.pacedRate), Value: r.Paced.P99Ms,
			Want: "< 20 ms", Met: r.Paced.P99Ms < 20,
			Figure: fmt.Sprintf("%.1f ms", r.Paced.P99Ms),
		})
	}
	for _, a := range r.Apply {
		ts = append(ts, applyTarget(a))
	}
	if r.Enqueue.Jobs > 0 {
		ts = append(ts, target{
			Name: "enqueue batch publishing", Value: r.Enqueue.JobsPerSec,
			Want: ">= 20000 jobs/s", Met: r.Enqueue.JobsPerSec >= 20000,
			Figure: fmt.Sprintf("%.0f jobs/s", r.Enqueue.JobsPerSec),
		})
	}
	return ts
}

func printTable(w io.Writer, r *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nGo %s, %d CPUs, GOMAXPROCS %d (bench process; the worker runs with its own)\n\n", r.GoVersion, r.CPUs, r.GOMAXPROCS)
	fmt.Fprintln(tw, "scenario\tjobs\tconc\tjobs/s\tvs\tp50 ms\tp99 ms\tCPU s/1k jobs\tpeak RSS MiB\tgoroutines\tnot ok")
	row := func(name string, b burn, vs string) {
		if b.Jobs == 0 {
			return
		}
		gor := "-"
		if b.MaxGoroutines > 0 {
			gor = fmt.Sprint(b.MaxGoroutines)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%.1f\t%.1f\t%.3f\t%.1f\t%s\t%d\n",
			name, b.Jobs, b.Concurrency, b.JobsPerSec, vs, b.P50Ms, b.P99Ms, b.CPUSecPer1000, b.PeakRSSMiB, gor, b.NotSucceeded)
	}
	row("1 baseline (nats.go consumer)", r.Baseline, "-")
	row("1b ceiling (baseline + HTTP call)", r.Ceiling, fmt.Sprintf("%.0f%% of baseline", 100*r.CeilingRatioToBaseline))
	vs := fmt.Sprintf("%.0f%% of baseline", 100*r.ZeroLatencyRatioToBaseline)
	if r.Ceiling.Jobs > 0 {
		vs += fmt.Sprintf(", %.0f%% of ceiling", 100*r.ZeroLatencyRatioToCeiling)
	}
	if w := r.ZeroLatency.LedgerWritesPerJob; w > 0 {
		vs += fmt.Sprintf(", %.2f ledger writes/job", w)
	}
	row("2 worker, 0 ms", r.ZeroLatency, vs)
	if p := r.Paced; p.Jobs > 0 {
		fmt.Fprintf(tw, "2 worker, 0 ms, paced %.0f/s\t%d\t%d\t%.0f offered\t-\t%.1f\t%.1f\t%.3f\t-\t-\t%d\n",
			p.OfferedRate, p.Jobs, p.Concurrency, p.AchievedRate, p.P50Ms, p.P99Ms, p.CPUSecPer1k, p.NotSucceeded)
	}
	for _, l := range r.Latency {
		row(fmt.Sprintf("3 worker, %.0f ms", l.LatencyMs), l, fmt.Sprintf("%.0f%% of ideal %.0f", 100*l.RatioToIdeal, l.IdealJobsPerSec))
	}
	for _, a := range r.Apply {
		row(fmt.Sprintf("5 worker, apply, %.0f ms per call", a.LatencyMs), a, fmt.Sprintf("%.0f%% concurrency use, %.2f calls/job", 100*a.ConcurrencyUse, a.CallsPerJob))
	}
	if e := r.Enqueue; e.Jobs > 0 {
		fmt.Fprintf(tw, "4 enqueue publish (%.1f MiB NDJSON)\t%d\t-\t%.0f\t-\t-\t-\t-\t-\t-\t%d stored\n", e.FileMiB, e.Jobs, e.JobsPerSec, e.Stored)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "target\tfigure\twant\tmet?")
	for _, t := range r.Targets {
		met := "NOT MET"
		if t.Met {
			met = "met"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Figure, t.Want, met)
	}
	_ = tw.Flush()
}
