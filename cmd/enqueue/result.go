package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// Exit statuses of result, one per state of a job (README, "enqueue
// result"); 0, 1 and 2 mean what they mean for every command.
const (
	exitUnknown    = 3 // no ledger record and not in the jobs stream
	exitQueued     = 4 // in the jobs stream, no worker has started it
	exitInProgress = 5 // a worker has started it, no final result yet
)

func newResultCmd(c *common, e env) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "result JOB_ID",
		Short: "Print a job's result, or say whether it is queued, in progress or unknown",
		Long: `Print a job's result from the ledger, or say where the job is.
Exit status: 0 succeeded, 1 ended otherwise, 2 usage or connection error,
3 unknown (never published, invalid, or expired from the ledger), 4 queued (still in the
jobs stream, not started), 5 in progress.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return errors.New("result: want exactly one job id")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(cmd.Context(), c, args[0], out.resolve("json"), e.stdout, e.stderr)
		},
	}
	out.register(cmd, "json")
	return cmd
}

func result(ctx context.Context, c *common, jobID, format string, stdout, stderr io.Writer) error {
	nc, js, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		return fmt.Errorf("result: open ledger: %w", err)
	}
	rec, err := ledger.ReadJob(ctx, kv, jobID)
	if errors.Is(err, ledger.ErrNotFound) {
		// A running job's claim is in its resource's record: the job
		// message, still in the stream, names the resource.
		queued, serr := inJobsStream(ctx, js, jobID)
		if serr != nil {
			return fmt.Errorf("result: %w", serr)
		}
		if queued == nil {
			return statusError{exitUnknown, fmt.Errorf("no record of job %q (never published, invalid, or expired from the ledger)", jobID)}
		}
		if rec, err = ledger.ReadClaim(ctx, kv, jobID, queued.Resource()); errors.Is(err, ledger.ErrNotFound) {
			return statusError{exitQueued, fmt.Errorf("job %q is queued: in the jobs stream, not started yet", jobID)}
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("result: %w", err)
	case rec.State != ledger.StateFinal || rec.Result == nil:
		return statusError{exitInProgress, fmt.Errorf("job %q is in progress (%d attempt(s) so far)", jobID, rec.Attempts)}
	}
	if format == "table" {
		printResult(stdout, *rec.Result)
	} else {
		line, _ := json.Marshal(rec.Result)
		fmt.Fprintf(stdout, "%s\n", line)
	}
	if rec.Result.Status != jobs.StatusSucceeded {
		return fmt.Errorf("%w: job %q ended %s", errNotSucceeded, jobID, rec.Result.Status)
	}
	return nil
}

// inJobsStream returns the job of a message with job id jobID (its
// Nats-Msg-Id, or its body's jobId when it has none) waiting in the jobs
// stream, nil if none does (or the message is no valid job). It is a work queue: a message still there has not been
// finished. A work queue takes no second consumer, so the messages are
// read one by one, as dlq.FindStranded does, within ctx's bound.
func inJobsStream(ctx context.Context, js jetstream.JetStream, jobID string) (jobs.Job, error) {
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil, err
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if id := raw.Header.Get(nats.MsgIdHdr); id != "" && id != jobID {
			continue
		}
		// A redriven job carries its id in the body only.
		if job, err := jobs.Decode(raw.Subject, raw.Header, raw.Data); err == nil && job.ID() == jobID {
			return job, nil
		}
	}
	return nil, nil
}

// printResult writes a result as name: value lines.
func printResult(w io.Writer, r jobs.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "JOB ID\t%s\n", r.JobID)
	fmt.Fprintf(tw, "STATUS\t%s\n", r.Status)
	if r.Error != nil {
		fmt.Fprintf(tw, "ERROR\t%s: %s\n", r.Error.Code, r.Error.Message)
	}
	_ = tw.Flush()
	printLive(w, r)
}
