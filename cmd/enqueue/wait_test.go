package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// waitRun is a waiter's wait driven by hand: results and ticks are handed
// to its loop one at a time, on unbuffered channels, so that what it prints
// follows the order of the test's steps. A waiter's results channel is where
// its NATS watches deliver; the scripts (testdata/wait.txtar) run the whole
// path against a server.
type waitRun struct {
	results chan<- jobs.Result
	tick    chan<- time.Time
	end     <-chan error
	stdout  strings.Builder
	stderr  strings.Builder
}

// startWait expects ids and starts the wait.
func startWait(t *testing.T, flags waitFlags, ids ...string) *waitRun {
	t.Helper()
	results, tick := make(chan jobs.Result), make(chan time.Time)
	w := &waiter{flags: flags, results: results, done: make(chan struct{}), want: map[string]jobs.Job{}, in: map[string]bool{}, tick: tick}
	for _, id := range ids {
		if err := w.expect(context.Background(), id, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	end := make(chan error, 1)
	run := &waitRun{results: results, tick: tick, end: end}
	go func() { end <- w.wait(context.Background(), &run.stdout, &run.stderr) }()
	return run
}

// finish waits for the wait to return; its output may be read after.
func (r *waitRun) finish(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.end:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return within 10s")
		return nil
	}
}

func resultOf(id string, status jobs.Status) jobs.Result {
	r := jobs.Result{JobID: id, Subject: jobs.SubjectKeyDelete, Status: status, Attempts: 1}
	if status == jobs.StatusFailed {
		r.Error = &jobs.ResultError{Code: "not_found"}
	}
	return r
}

func TestWaitReportsProgressOnTicksOnlyWhenItChanged(t *testing.T) {
	t.Parallel()
	// "a" twice, as in a batch that names a job id twice: one job.
	run := startWait(t, waitFlags{timeout: time.Minute}, "a", "b", "c", "a")
	run.results <- resultOf("a", jobs.StatusSucceeded)
	run.tick <- time.Time{}
	run.tick <- time.Time{} // nothing new: no line
	run.results <- resultOf("b", jobs.StatusFailed)
	run.tick <- time.Time{}
	run.results <- resultOf("c", jobs.StatusUnchanged)
	if err := run.finish(t); err == nil {
		t.Error("wait succeeded with a job failed")
	}
	want := "waiting: 1 of 3 results (1 succeeded, 0 failed)\n" +
		"waiting: 2 of 3 results (1 succeeded, 1 failed)\n"
	if diff := cmp.Diff(want, run.stderr.String()); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
	if n := strings.Count(run.stdout.String(), `"jobId"`); n != 3 {
		t.Errorf("stdout has %d results, want 3 JSON lines:\n%s", n, run.stdout.String())
	}
}

func TestWaitWithoutATickPrintsNoProgress(t *testing.T) {
	t.Parallel()
	run := startWait(t, waitFlags{timeout: time.Minute}, "quick")
	run.results <- resultOf("quick", jobs.StatusSucceeded)
	if err := run.finish(t); err != nil {
		t.Errorf("wait: %v", err)
	}
	if got := run.stderr.String(); got != "" {
		t.Errorf("stderr %q, want nothing", got)
	}
}

func TestWaitPrintsATableOnceAllAreIn(t *testing.T) {
	t.Parallel()
	run := startWait(t, waitFlags{timeout: time.Minute, output: "table"}, "first-job", "b")
	run.results <- resultOf("first-job", jobs.StatusSucceeded)
	run.results <- resultOf("unasked", jobs.StatusSucceeded) // another producer's job
	run.results <- resultOf("b", jobs.StatusFailed)
	if err := run.finish(t); err == nil {
		t.Error("wait succeeded with a job failed")
	}
	want := "JOB ID     SUBJECT            STATUS     ATTEMPTS  ERROR\n" +
		"first-job  apiops.key.delete  succeeded  1         \n" +
		"b          apiops.key.delete  failed     1         not_found\n"
	if diff := cmp.Diff(want, run.stdout.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}

func TestWaitNamesTheJobsWithoutAResult(t *testing.T) {
	t.Parallel()
	ids := func(n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("job-%02d", i+1))
		}
		return s
	}
	lines := func(ids []string) string {
		var b strings.Builder
		for _, id := range ids {
			fmt.Fprintf(&b, "  %s\n", id)
		}
		return b.String()
	}
	for _, c := range []struct {
		name    string
		missing int
		file    bool
		tail    string
	}{
		{"twenty are all named", 20, false, ""},
		{"past twenty the rest are counted and the flag named", 23, false, "  … and 3 more; --missing-file FILE writes them all\n"},
		{"past twenty with --missing-file the file is named", 23, true, "  … and 3 more; all 23 are in {file}\n"},
		{"one is named, and is the whole file", 1, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			flags := waitFlags{timeout: time.Millisecond}
			if c.file {
				flags.missingFile = filepath.Join(t.TempDir(), "missing.txt")
			}
			all := append([]string{"arrives"}, ids(c.missing)...)
			run := startWait(t, flags, all...)
			run.results <- resultOf("arrives", jobs.StatusSucceeded)
			if err := run.finish(t); err == nil {
				t.Fatal("wait succeeded with results missing")
			}
			want := fmt.Sprintf("no result within 1ms for %d job(s):\n", c.missing) +
				lines(ids(min(c.missing, missingShown))) + strings.ReplaceAll(c.tail, "{file}", flags.missingFile)
			if diff := cmp.Diff(want, run.stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if !c.file {
				return
			}
			b, err := os.ReadFile(flags.missingFile)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(strings.Join(ids(c.missing), "\n")+"\n", string(b)); diff != "" {
				t.Errorf("--missing-file (-want +got):\n%s", diff)
			}
		})
	}
}
