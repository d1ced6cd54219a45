package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// newPublishCmd publishes the jobs of a JSON or NDJSON file (or stdin). Every
// job is validated first; if any is invalid, each bad one is reported where
// it is and nothing is published.
func newPublishCmd(c *common, e env) *cobra.Command {
	var opt batchOptions
	cmd := &cobra.Command{
		Use:   "publish [--subject S] FILE|-",
		Short: "Publish the jobs of a JSON object, JSON array or NDJSON file (- for standard input)",
		Long: `Publish the jobs of a JSON object, JSON array or NDJSON file (- for standard input).
A "subject" field per job overrides --subject. Every job is validated first: if any is
invalid, each bad one is reported (by line in NDJSON, by index in an array) and nothing
is published. So is every job id that already names another job in the ledger.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("publish: want one file name, or - for standard input")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, ok := jobs.ParseSubject(opt.subject); opt.subject != "" && !ok {
				return fmt.Errorf("--subject %q: unknown subject; %s", opt.subject, validSubjects())
			}
			in := e.stdin
			if name := args[0]; name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return fmt.Errorf("publish: %w", err)
				}
				defer f.Close()
				in = f
			}
			opt.scoped, opt.newIDs = c.scoped, c.forceNewID
			list, notes, err := readJobs(bufio.NewReaderSize(in, 1<<20), opt)
			if err != nil {
				return err
			}
			for _, n := range notes {
				fmt.Fprintln(e.stderr, n)
			}
			if opt.newIDs {
				fmt.Fprintf(e.stderr, "--force-new-id: every job published under a new id (stdout lists them in input order)\n")
			}
			return publishJobs(cmd.Context(), c, list, e.stdout, e.stderr)
		},
	}
	c.registerPublish(cmd.Flags())
	cmd.Flags().StringVar(&opt.subject, "subject", "", "subject of jobs that carry no \"subject\" field")
	return cmd
}

// outgoing is a job, the subject it is published on, and where it came from.
type outgoing struct {
	job     jobs.Job
	subject string
	// at is where the job is in a batch file ("line 3", "[2]"); empty for a
	// job built from flags.
	at string
	// givenID: the id is the user's (--id, a file's jobId), so it may name
	// an earlier job. A generated one is not looked up.
	givenID bool
}

// wireSubject is the subject job goes out on: subject as given (bare or
// scoped), or with scoped the scoped form of a bare one. A project that is
// not a subject token has no scoped form.
func wireSubject(subject string, job jobs.Job, scoped bool) (string, error) {
	bare, project, _ := jobs.ParseSubject(subject)
	if project != "" || !scoped {
		return subject, nil
	}
	return jobs.ScopedSubject(bare, job.Resource().Project)
}

// publishJobs publishes jobs asynchronously with bounded pending acks, each
// with Nats-Msg-Id set to its job id, and prints the job ids, or with --wait
// their results. Given ids are looked up in the ledger first (ids.go): if
// one names another job, nothing is published; a job the ledger holds
// already is not published again.
func publishJobs(ctx context.Context, c *common, list []outgoing, stdout, stderr io.Writer) error {
	if err := c.waitFlags.check(); err != nil {
		return err
	}
	nc, js, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()

	priors, err := checkIDs(ctx, nc, js, list)
	if err != nil {
		return err
	}
	var w *waiter
	if c.wait {
		subjects := make([]string, len(list))
		for i, o := range list {
			subjects[i] = o.subject
		}
		if w, err = newWaiter(ctx, js, subjects, c.waitFlags); err != nil {
			return err
		}
		defer w.close()
	}
	note := &jobNotes{w: stderr}
	known, err := holdBack(ctx, list, priors, w, note)
	if err != nil {
		return err
	}
	batch := len(list) > 1
	sent := make([]int, 0, len(list)) // indexes in list
	futures := make([]jetstream.PubAckFuture, 0, len(list))
	for i, o := range list {
		if !priors[i].published() {
			continue
		}
		msg, err := jobs.NewMsg(o.job)
		if err != nil {
			return fmt.Errorf("job %d: %w", i+1, err)
		}
		msg.Subject = o.subject
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publish job %q: %w", o.job.ID(), err)
		}
		sent, futures = append(sent, i), append(futures, f)
		if batch && len(sent)%10000 == 0 {
			fmt.Fprintf(stderr, "published %d/%d\n", len(sent), len(list))
		}
	}
	ackCtx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(len(futures))*time.Millisecond)
	defer cancel()
	select {
	case <-js.PublishAsyncComplete():
	case <-ackCtx.Done():
		return fmt.Errorf("publish: no acknowledgement from JetStream: %w", ackCtx.Err())
	}
	duplicates := 0
	for k, f := range futures {
		job := list[sent[k]].job
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				// The server stored nothing: a message with this id came
				// within its duplicate window, and the ledger had no result
				// for it when looked up, so it has not finished.
				duplicates++
				if w != nil {
					note.add("job %q: a job with this id was published within the duplicate window and has not finished, so the server dropped this one; its result is compared with this job when it comes", job.ID())
				} else {
					note.add("job %q: a job with this id was published within the duplicate window and has not finished, so the server dropped this one and it could not be compared with it (enqueue result %s shows it)", job.ID(), job.ID())
				}
			}
			if w != nil {
				if err := w.expect(ctx, job.ID(), job, ack.Duplicate); err != nil {
					return err
				}
			}
		case err := <-f.Err():
			return fmt.Errorf("publish job %q: %w", job.ID(), err)
		}
	}
	note.flush()
	if w == nil {
		for _, o := range list {
			fmt.Fprintln(stdout, o.job.ID())
		}
	}
	if batch || known+duplicates > 0 {
		fmt.Fprintf(stderr, "published %d job(s), %d already known and not published again\n", len(sent)-duplicates, known+duplicates)
	}
	if w == nil {
		return nil
	}
	return w.wait(ctx, stdout, stderr)
}

// holdBack reports the jobs whose ids the ledger holds already, which are
// not published, and with w waits for them: for a job that ended, its
// stored result. It returns how many there are.
func holdBack(ctx context.Context, list []outgoing, priors []prior, w *waiter, note *jobNotes) (int, error) {
	known := 0
	for i, o := range list {
		p := priors[i]
		switch {
		case p.published():
			continue
		case p.result != nil:
			note.add("job %q already exists (%s); not published again", o.job.ID(), ended(*p.result))
		case w != nil:
			note.add("job %q already exists and is in progress; not published again, and compared with this one when its result comes", o.job.ID())
		default:
			note.add("job %q already exists and is in progress; not published again, and not compared with this one until it ends (enqueue result %s)", o.job.ID(), o.job.ID())
		}
		known++
		if w == nil {
			continue
		}
		// A job held by a worker is read again now that the waiter
		// watches: it may have ended since it was looked up.
		if err := w.expect(ctx, o.job.ID(), o.job, p.running); err != nil {
			return 0, err
		}
		if p.result != nil {
			w.found(*p.result)
		}
	}
	return known, nil
}

// noteLimit bounds the notes about single jobs one run prints.
const noteLimit = 20

// jobNotes writes up to noteLimit lines, and then only counts them.
type jobNotes struct {
	w io.Writer
	n int
}

func (n *jobNotes) add(format string, args ...any) {
	if n.n++; n.n <= noteLimit {
		fmt.Fprintf(n.w, format+"\n", args...)
	}
}

func (n *jobNotes) flush() {
	if n.n > noteLimit {
		fmt.Fprintf(n.w, "(and %d more like these)\n", n.n-noteLimit)
	}
}
