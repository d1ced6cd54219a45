package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// newDLQCmd inspects and replays dead letters:
//
//	enqueue dlq list [--subject S] [--limit N] [--output table|json]
//	enqueue dlq show ID [--output json|table]
//	enqueue dlq replay ID | --all [--subject S] [--yes]
//	enqueue dlq purge [--subject S] [--yes]
//	enqueue dlq stranded [--redrive]
//
// ID is a record's sequence number (from list) or a job id.
func newDLQCmd(c *common, e env) *cobra.Command {
	root := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and purge dead letters; find stranded jobs",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return unknown(cmd, args, e.stderr)
		},
	}
	root.AddCommand(dlqList(c, e), dlqShow(c, e), dlqReplay(c, e), dlqPurge(c, e), dlqStranded(c, e))
	return root
}

// dlqSession connects and bounds a DLQ command to a minute.
func dlqSession(ctx context.Context, c *common, stderr io.Writer, do func(context.Context, jetstream.JetStream) error) error {
	nc, js, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return do(ctx, js)
}

// dlqFilteredSession is dlqSession for the commands taking --subject: the
// subject is checked before connecting and handed on as its DLQ filter.
func dlqFilteredSession(ctx context.Context, c *common, stderr io.Writer, subject string, do func(ctx context.Context, js jetstream.JetStream, filter string) error) error {
	filter, err := subjectFilter(subject)
	if err != nil {
		return err
	}
	return dlqSession(ctx, c, stderr, func(ctx context.Context, js jetstream.JetStream) error {
		return do(ctx, js, filter)
	})
}

// subjectFilter is the DLQ filter of --subject: empty for all. A subject
// that is no job subject is refused, naming the valid ones, since it would
// match nothing and look like an empty queue.
func subjectFilter(subject string) (string, error) {
	if subject == "" {
		return "", nil
	}
	bare, _, ok := jobs.ParseSubject(subject)
	if !ok || !slices.Contains(jobs.Subjects, bare) {
		return "", fmt.Errorf("--subject %q: unknown subject; want one of %s (or apiops.<resource>.<action>.<project>)", subject, strings.Join(jobs.Subjects, ", "))
	}
	return dlq.Subject(subject), nil
}

func dlqList(c *common, e env) *cobra.Command {
	var (
		subject string
		limit   int
		out     output
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dlqFilteredSession(cmd.Context(), c, e.stderr, subject, func(ctx context.Context, js jetstream.JetStream, filter string) error {
				total, _, err := dlqCount(ctx, js, filter)
				if err != nil {
					return err
				}
				recs, err := dlq.List(ctx, js, filter, limit)
				if err != nil {
					return err
				}
				// dlq.List reads in batches and may return more than asked.
				if limit > 0 && len(recs) > limit {
					recs = recs[:limit]
				}
				if err := printRecords(e.stdout, out.resolve("table"), recs); err != nil {
					return err
				}
				if len(recs) < total {
					fmt.Fprintf(e.stderr, "showing %d of %d dead letter(s) (--limit 0 shows all)\n", len(recs), total)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&subject, "subject", "", "only dead letters of this job subject, e.g. apiops.key.delete")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many (0: all)")
	out.register(cmd, "table")
	return cmd
}

func printRecords(w io.Writer, format string, recs []dlq.Record) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(numbered(r)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEAD AT\tREASON\tSUBJECT\tJOB ID\tERROR")
	for _, r := range recs {
		code := ""
		if r.Error != nil {
			code = r.Error.Code
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.DeadAt.Format(time.RFC3339), r.Reason, r.Subject, r.JobID, code)
	}
	return tw.Flush()
}

type numberedRecord struct {
	Seq uint64 `json:"seq"`
	dlq.Record
}

func numbered(r dlq.Record) numberedRecord { return numberedRecord{r.Seq, r} }

func dlqShow(c *common, e env) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one dead letter: by sequence number (from list) or job id",
		Args:  oneID("show"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dlqSession(cmd.Context(), c, e.stderr, func(ctx context.Context, js jetstream.JetStream) error {
				r, err := dlq.Get(ctx, js, args[0])
				if err != nil {
					return err
				}
				if out.resolve("json") == "table" {
					return printRecords(e.stdout, "table", []dlq.Record{r})
				}
				b, _ := json.MarshalIndent(numbered(r), "", "  ")
				fmt.Fprintf(e.stdout, "%s\n", b)
				return nil
			})
		},
	}
	out.register(cmd, "json")
	return cmd
}

func oneID(verb string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("dlq %s: want one record number or job id", verb)
		}
		return nil
	}
}

func dlqStranded(c *common, e env) *cobra.Command {
	var redrive bool
	cmd := &cobra.Command{
		Use:   "stranded [--redrive]",
		Short: "List jobs left in the jobs stream that no worker will deliver again or finished",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("dlq stranded: unexpected argument %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dlqSession(cmd.Context(), c, e.stderr, func(ctx context.Context, js jetstream.JetStream) error {
				return stranded(ctx, js, redrive, e.stdout, e.stderr)
			})
		},
	}
	cmd.Flags().BoolVar(&redrive, "redrive", false, "republish each stranded job as a new delivery, keeping its job id")
	return cmd
}
