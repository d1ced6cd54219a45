package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// scopedWatchInactivity is how long the results consumer of a scoped
// producer outlives its client. Each counts against the results stream's
// MaxConsumers until the server removes it, so a crashed enqueue should not
// hold one for nats.go's default of five minutes.
const scopedWatchInactivity = 30 * time.Second

// waitFlags are the flags of the commands that can wait for their jobs'
// results: the job commands, publish and dlq replay.
type waitFlags struct {
	wait        bool
	timeout     time.Duration
	output      output
	missingFile string
}

func (f *waitFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.wait, "wait", false, "wait for each job's result, print it, and fail unless every job succeeded")
	f.timeout = time.Minute
	fs.Var((*seconds)(&f.timeout), "timeout", "with --wait, how long to wait for the results: a duration (90s, 2m) or a number of seconds")
	f.output.flag(fs, "with --wait, print the results as JSON lines as they come, or as a table once all are in: table or json (default json)")
	fs.StringVar(&f.missingFile, "missing-file", "", "with --wait, write the id of each job left without a result to this file, one a line (empty when none is)")
}

// check refuses the flags that only mean something with --wait, and creates
// --missing-file before anything is published: a path that cannot be
// written is better found now than after the wait, and a list from an
// earlier run must not be read as this run's.
func (f *waitFlags) check() error {
	if !f.wait {
		switch {
		case f.output != "":
			return errors.New("--output formats the results of --wait: use it with --wait")
		case f.missingFile != "":
			return errors.New("--missing-file lists the jobs --wait got no result for: use it with --wait")
		}
		return nil
	}
	if f.missingFile == "" {
		return nil
	}
	file, err := os.Create(f.missingFile)
	if err != nil {
		return fmt.Errorf("--missing-file: %w", err)
	}
	return file.Close()
}

// writeMissing writes the ids of the jobs left without a result to
// --missing-file, if given, for a script to check again with enqueue result.
func (f *waitFlags) writeMissing(ids []string) error {
	if f.missingFile == "" {
		return nil
	}
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(f.missingFile, []byte(b.String()), 0o666); err != nil {
		return fmt.Errorf("--missing-file: %w", err)
	}
	return nil
}

// waiter collects the results of the jobs it was told about. It is started
// before the jobs are published, so no result can slip past it.
type waiter struct {
	js      jetstream.JetStream
	flags   waitFlags
	results chan jobs.Result
	done    chan struct{}
	watches []jetstream.ConsumeContext
	// order is every job id expected, once, in the order given: the jobs
	// left without a result are named in it.
	order []string
	// want holds the jobs waited for, by id; in is true for those whose
	// result came.
	want map[string]jobs.Job
	in   map[string]bool
	// got are results taken in and not printed yet.
	got []jobs.Result
	// taken are results under a wanted id that are of another job.
	taken []error
	// tick paces the progress lines; nil is a ticker of progressEvery.
	// Tests tick by hand.
	tick <-chan time.Time
}

// newWaiter watches the results of jobs published on subjects. Jobs
// published on scoped subjects are watched through one consumer per project
// and subject shape, filtered to apiops.results.*.*.<project>: a producer
// allowed one project may create no other (deploy/compose/nats-auth.conf).
// Otherwise one consumer watches every result.
func newWaiter(ctx context.Context, js jetstream.JetStream, subjects []string, flags waitFlags) (*waiter, error) {
	w := &waiter{js: js, flags: flags, results: make(chan jobs.Result), done: make(chan struct{}), want: make(map[string]jobs.Job), in: make(map[string]bool)}
	var filters []string
	for _, subject := range subjects {
		f, scoped := resultFilter(subject)
		if !scoped {
			filters = nil
			break
		}
		if !slices.Contains(filters, f) {
			filters = append(filters, f)
		}
	}
	if len(filters) == 0 {
		cons, err := streams.WatchResults(ctx, js)
		if err != nil {
			return nil, fmt.Errorf("watch results: %w", err)
		}
		return w, w.watch(cons)
	}
	s, err := js.Stream(ctx, streams.Results)
	if err != nil {
		return nil, fmt.Errorf("watch results: %w", err)
	}
	for _, f := range filters {
		cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects:    []string{f},
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       s.CachedInfo().State.LastSeq + 1,
			InactiveThreshold: scopedWatchInactivity,
		})
		if err == nil {
			err = w.watch(cons)
		}
		if err != nil {
			w.close()
			return nil, fmt.Errorf("watch results on %s: %w", f, err)
		}
	}
	return w, nil
}

// resultFilter returns, for a scoped job subject, the filter that matches
// the results of every job of that shape in its project:
// apiops.key.delete.TeamA gives apiops.results.*.*.TeamA.
func resultFilter(subject string) (filter string, scoped bool) {
	if _, project, ok := jobs.ParseSubject(subject); !ok || project == "" {
		return "", false
	}
	tokens := strings.Split(jobs.ResultSubject(subject), ".")
	for i := 2; i < len(tokens)-1; i++ {
		tokens[i] = "*"
	}
	return strings.Join(tokens, "."), true
}

func (w *waiter) watch(cons jetstream.Consumer) error {
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var r jobs.Result
		if json.Unmarshal(msg.Data(), &r) != nil {
			return
		}
		select {
		case w.results <- r:
		case <-w.done:
		}
	})
	if err != nil {
		return err
	}
	w.watches = append(w.watches, cc)
	return nil
}

// close stops the watches.
func (w *waiter) close() {
	close(w.done)
	for _, cc := range w.watches {
		cc.Stop()
	}
}

// expect adds job jobID to wait for; job, if not nil, is what was asked
// for, which its result must match. With fromLedger nothing was published
// for it (the server dropped it as a duplicate, or a worker holds its id),
// so its result, if the job is final already, is in the ledger.
func (w *waiter) expect(ctx context.Context, jobID string, job jobs.Job, fromLedger bool) error {
	if _, known := w.want[jobID]; known {
		return nil // a job id twice in one batch: the second was a duplicate
	}
	w.order = append(w.order, jobID)
	w.want[jobID] = job
	if !fromLedger {
		return nil
	}
	kv, err := w.js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		return fmt.Errorf("look up job %q: %w", jobID, err)
	}
	rec, err := ledger.ReadJob(ctx, kv, jobID)
	if err == nil && rec.State == ledger.StateFinal && rec.Result != nil {
		w.found(*rec.Result)
	} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("look up job %q: %w", jobID, err)
	}
	return nil
}

// found takes a result in, if it is of a job waited for. A result under a
// wanted id that is of another job is that id's earlier job: the one asked
// for will not run.
func (w *waiter) found(r jobs.Result) {
	job, ok := w.want[r.JobID]
	if !ok || w.in[r.JobID] {
		return
	}
	w.in[r.JobID] = true
	if job != nil && !sameJob(job, r) {
		w.taken = append(w.taken, &idTakenError{asked: job, was: r})
		return
	}
	w.got = append(w.got, r)
}

// wait prints the results as they come (JSON lines), or once all are in or
// the time is up (a table, whose columns need every row), reports progress
// on stderr, names the jobs left without a result, and fails unless every
// job succeeded within --timeout.
func (w *waiter) wait(ctx context.Context, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, w.flags.timeout)
	defer cancel()
	tick := w.tick
	if tick == nil {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		tick = t.C
	}
	table := w.flags.output.resolve("json") == "table"
	var (
		rows []jobs.Result
		p    = newProgress(len(w.order))
	)
	print := func(r jobs.Result) {
		p.add(r)
		if table {
			rows = append(rows, r)
		} else {
			line, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s\n", line)
		}
		printLive(stderr, r)
	}
	flush := func() {
		for _, r := range w.got {
			print(r)
		}
		w.got = w.got[:0]
	}
	flush()
	for len(w.in) < len(w.want) {
		select {
		case r := <-w.results:
			w.found(r)
			flush()
			continue
		case <-tick:
			p.report(stderr)
			continue
		case <-ctx.Done():
		}
		break
	}
	if table {
		printResultRows(stdout, rows)
	}
	var missing []string
	for _, id := range w.order {
		if !w.in[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		reportMissing(stderr, w.flags, missing)
	}
	if err := w.flags.writeMissing(missing); err != nil {
		return err
	}
	if len(w.taken) > 0 {
		// The id's earlier job answered: the one asked for never ran.
		// Like a clash found before publishing, that is the input's error.
		return fmt.Errorf("%d job id(s) already named other jobs, whose results came instead:\n%w\ngive each job another id, or use --force-new-id (%d other job(s) without a result, %d did not succeed)",
			len(w.taken), errors.Join(w.taken...), len(missing), p.failed)
	}
	if n := len(missing); n > 0 {
		return fmt.Errorf("%w: %d without a result, %d did not succeed", errNotSucceeded, n, p.failed)
	}
	if p.failed > 0 {
		return fmt.Errorf("%w: %d did not succeed", errNotSucceeded, p.failed)
	}
	return nil
}
