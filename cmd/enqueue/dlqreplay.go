package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/dlq"
)

func dlqReplay(c *common, e env) *cobra.Command {
	var (
		subject string
		all     bool
		yes     bool
	)
	cmd := &cobra.Command{
		Use:   "replay ID | --all [--subject S]",
		Short: "Republish dead letters' jobs as new jobs (a new job id, naming the old one)",
		Args: func(_ *cobra.Command, args []string) error {
			if all {
				return noArgs(nil, args)
			}
			return oneID("replay")(nil, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.waitFlags.check(); err != nil {
				return err
			}
			return dlqFilteredSession(cmd.Context(), c, e.stderr, subject, func(ctx context.Context, js jetstream.JetStream, filter string) error {
				var recs []dlq.Record
				if all {
					var err error
					if recs, err = dlq.List(ctx, js, filter, 0); err != nil {
						return err
					}
					if len(recs) == 0 {
						fmt.Fprintln(e.stderr, "no dead letters to replay")
						return nil
					}
					if err := printRecords(e.stderr, "table", recs); err != nil {
						return err
					}
					if err := confirm(e, yes, fmt.Sprintf("replay these %d dead letter(s)", len(recs))); err != nil {
						return err
					}
				} else {
					r, err := dlq.Get(ctx, js, args[0])
					if err != nil {
						return err
					}
					recs = []dlq.Record{r}
				}
				return replay(ctx, cmd.Context(), c, js, recs, e.stdout, e.stderr)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter (of --subject), after showing them and asking")
	cmd.Flags().StringVar(&subject, "subject", "", "with --all, only dead letters of this job subject")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "with --all, do not ask")
	c.waitFlags.register(cmd.Flags())
	return cmd
}

// replay republishes the records' jobs as new jobs and with --wait waits for
// their results as the job commands do. ctx, the session's, bounds the
// publishing; the wait starts from waitCtx, so that --timeout rather than the
// session's minute bounds it.
func replay(ctx, waitCtx context.Context, c *common, js jetstream.JetStream, recs []dlq.Record, stdout, stderr io.Writer) error {
	var w *waiter
	report := stdout
	if c.wait {
		subjects := make([]string, len(recs))
		for i, r := range recs {
			subjects[i] = r.Subject
		}
		var err error
		if w, err = newWaiter(ctx, js, subjects, c.waitFlags); err != nil {
			return err
		}
		defer w.close()
		// stdout is the results', as with the job commands' --wait.
		report = stderr
	}
	var (
		errs     []error
		replayed int
	)
	for _, r := range recs {
		newID, err := dlq.Replay(ctx, js, r)
		// A new id comes with an error when the job went out but its
		// record stayed: it is waited for all the same. The id is made of
		// the record's sequence, so a record replayed again after such an
		// error, within the duplicate window, is a duplicate the server
		// dropped, whose result may be in the ledger already: expect looks
		// there (for a new job it finds nothing).
		if newID != "" && w != nil {
			if err := w.expect(ctx, newID, nil, true); err != nil {
				errs = append(errs, err)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		replayed++
		fmt.Fprintf(report, "replayed %s as %s\n", strconv.Quote(r.JobID), newID)
	}
	fmt.Fprintf(stderr, "replayed %d of %d dead letter(s)\n", replayed, len(recs))
	replayErr := errors.Join(errs...)
	if w == nil {
		return replayErr
	}
	waitErr := w.wait(waitCtx, stdout, stderr)
	if replayErr != nil {
		// A dead letter that could not be replayed is an input error (exit
		// 2), even when a job that was replayed also did not succeed.
		return statusError{2, errors.Join(replayErr, waitErr)}
	}
	return waitErr
}
