package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
// job is validated first; if any is invalid, each bad one is reported with
// its line number and nothing is published.
func newPublishCmd(c *common, e env) *cobra.Command {
	var subject string
	cmd := &cobra.Command{
		Use:   "publish [--subject S] FILE|-",
		Short: "Publish the jobs of a JSON object, JSON array or NDJSON file (- for standard input)",
		Long: `Publish the jobs of a JSON object, JSON array or NDJSON file (- for standard input).
A "subject" field per job overrides --subject. Every job is validated first: if any is
invalid, each bad one is reported with its line number and nothing is published.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("publish: want one file name, or - for standard input")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			in := e.stdin
			if name := args[0]; name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return fmt.Errorf("publish: %w", err)
				}
				defer f.Close()
				in = f
			}
			list, err := readJobs(bufio.NewReaderSize(in, 1<<20), subject, c.scoped)
			if err != nil {
				return err
			}
			return publishJobs(cmd.Context(), c, list, e.stdout, e.stderr)
		},
	}
	c.registerPublish(cmd.Flags())
	cmd.Flags().StringVar(&subject, "subject", "", "subject of jobs that carry no \"subject\" field")
	return cmd
}

// outgoing is a job and the subject it is published on.
type outgoing struct {
	job     jobs.Job
	subject string
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

// readJobs decodes a stream of JSON values, each a job or an array of jobs,
// and with scoped gives each job its scoped subject.
func readJobs(in io.Reader, subject string, scoped bool) ([]outgoing, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("publish: read: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var (
		out  []outgoing
		errs []error
		// lineAt counts lines only up to where it counted last: offsets
		// only grow, and a count from the start for every job would make
		// a large batch quadratic.
		counted   int64
		lineCount = 1
	)
	lineAt := func(offset int64) int {
		lineCount += bytes.Count(data[counted:offset], []byte("\n"))
		counted = offset
		return lineCount
	}
	add := func(raw json.RawMessage, offset int64) {
		s, body, err := splitSubject(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", lineAt(offset), err))
			return
		}
		if s == "" {
			s = subject
		}
		if s == "" {
			errs = append(errs, fmt.Errorf("line %d: no subject (give the job a \"subject\" field or use --subject)", lineAt(offset)))
			return
		}
		job, err := jobs.Decode(s, nil, body)
		if err == nil {
			s, err = wireSubject(s, job, scoped)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", lineAt(offset), err))
			return
		}
		out = append(out, outgoing{job, s})
	}
	for {
		offset := skipSpace(data, dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			errs = append(errs, fmt.Errorf("line %d: malformed JSON: %v", lineAt(offset), err))
			break
		}
		if len(raw) > 0 && raw[0] == '[' {
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil {
				errs = append(errs, fmt.Errorf("line %d: %v", lineAt(offset), err))
				continue
			}
			// Elements of an array are reported at the array's line.
			for _, item := range items {
				add(item, offset)
			}
			continue
		}
		add(raw, offset)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("publish: nothing published, %d invalid job(s):\n%w", len(errs), errors.Join(errs...))
	}
	if len(out) == 0 {
		return nil, errors.New("publish: no jobs in input")
	}
	return out, nil
}

// skipSpace returns the offset of the first non-space byte at or after off,
// where the next JSON value begins.
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) && (data[off] == ' ' || data[off] == '\n' || data[off] == '\r' || data[off] == '\t') {
		off++
	}
	return off
}

// publishJobs publishes jobs asynchronously with bounded pending acks, each
// with Nats-Msg-Id set to its job id, and prints the job ids, or with --wait
// their results.
func publishJobs(ctx context.Context, c *common, list []outgoing, stdout, stderr io.Writer) error {
	if err := c.waitFlags.check(); err != nil {
		return err
	}
	nc, js, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()

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
	batch := len(list) > 1
	futures := make([]jetstream.PubAckFuture, 0, len(list))
	for i, o := range list {
		job := o.job
		msg, err := jobs.NewMsg(job)
		if err != nil {
			return fmt.Errorf("job %d: %w", i+1, err)
		}
		msg.Subject = o.subject
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publish job %q: %w", job.ID(), err)
		}
		futures = append(futures, f)
		if batch && (i+1)%10000 == 0 {
			fmt.Fprintf(stderr, "published %d/%d\n", i+1, len(list))
		}
	}
	ackCtx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(len(list))*time.Millisecond)
	defer cancel()
	select {
	case <-js.PublishAsyncComplete():
	case <-ackCtx.Done():
		return fmt.Errorf("publish: no acknowledgement from JetStream: %w", ackCtx.Err())
	}
	duplicates := 0
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				duplicates++
			}
			if w != nil {
				if err := w.expect(ctx, list[i].job.ID(), ack.Duplicate); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(stdout, list[i].job.ID())
			}
		case err := <-f.Err():
			return fmt.Errorf("publish job %q: %w", list[i].job.ID(), err)
		}
	}
	if batch || duplicates > 0 {
		fmt.Fprintf(stderr, "published %d job(s), %d already known (duplicate job id within the window)\n", len(list), duplicates)
	}
	if w == nil {
		return nil
	}
	return w.wait(ctx, stdout, stderr)
}
