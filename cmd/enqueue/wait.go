package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// scopedWatchInactivity is how long the results consumer of a scoped
// producer outlives its client. Each counts against the results stream's
// MaxConsumers until the server removes it, so a crashed enqueue should not
// hold one for nats.go's default of five minutes.
const scopedWatchInactivity = 30 * time.Second

// waiter collects the results of the jobs it was told about. It is started
// before the jobs are published, so no result can slip past it.
type waiter struct {
	js      jetstream.JetStream
	results chan jobs.Result
	done    chan struct{}
	watches []jetstream.ConsumeContext
	// want holds the jobs waited for, by id.
	want map[string]jobs.Job
	got  []jobs.Result
	// taken are results under a wanted id that are of another job.
	taken []error
}

// newWaiter watches the results of list. Jobs published on scoped subjects
// are watched through one consumer per project and subject shape, filtered
// to apiops.results.*.*.<project>: a producer allowed one project may create
// no other (deploy/compose/nats-auth.conf). Otherwise one consumer watches
// every result.
func newWaiter(ctx context.Context, js jetstream.JetStream, list []outgoing) (*waiter, error) {
	w := &waiter{js: js, results: make(chan jobs.Result), done: make(chan struct{}), want: make(map[string]jobs.Job)}
	var filters []string
	for _, o := range list {
		f, scoped := resultFilter(o.subject)
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

// expect adds a job to wait for. With fromLedger nothing was published for
// it (the server dropped it as a duplicate, or a worker holds its id), so
// its result, if the job is final already, is in the ledger.
func (w *waiter) expect(ctx context.Context, job jobs.Job, fromLedger bool) error {
	jobID := job.ID()
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
	if !ok {
		return
	}
	delete(w.want, r.JobID)
	if !sameJob(job, r) {
		w.taken = append(w.taken, &idTakenError{asked: job, was: r})
		return
	}
	w.got = append(w.got, r)
}

// wait prints each result as one JSON line and fails unless every job
// succeeded within the timeout.
func (w *waiter) wait(ctx context.Context, timeout time.Duration, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	failed := 0
	print := func(r jobs.Result) {
		line, _ := json.Marshal(r)
		fmt.Fprintf(stdout, "%s\n", line)
		printLive(stderr, r)
		if !done(r) {
			failed++
		}
	}
	for len(w.want) > 0 || len(w.got) > 0 {
		for _, r := range w.got {
			print(r)
		}
		w.got = w.got[:0]
		if len(w.want) == 0 {
			break
		}
		select {
		case r := <-w.results:
			w.found(r)
			continue
		case <-ctx.Done():
		}
		break
	}
	if len(w.taken) > 0 {
		// The id's earlier job answered: the one asked for never ran.
		// Like a clash found before publishing, that is the input's error.
		return fmt.Errorf("%d job id(s) already named other jobs, whose results came instead:\n%w\ngive each job another id, or use --force-new-id (%d other job(s) without a result, %d did not succeed)",
			len(w.taken), errors.Join(w.taken...), len(w.want), failed)
	}
	if n := len(w.want); n > 0 {
		fmt.Fprintf(stderr, "no result within %s for %d job(s)\n", timeout, n)
		return fmt.Errorf("%w: %d without a result, %d did not succeed", errNotSucceeded, n, failed)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d did not succeed", errNotSucceeded, failed)
	}
	return nil
}
