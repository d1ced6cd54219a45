package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/streams"
)

// dlqCount is how many dead letters match filter, and the last sequence
// number among them: what a purge up to it removes.
func dlqCount(ctx context.Context, js jetstream.JetStream, filter string) (count int, lastSeq uint64, err error) {
	s, err := js.Stream(ctx, streams.DeadLetters)
	if err != nil {
		return 0, 0, fmt.Errorf("dlq: %w", err)
	}
	if filter == "" {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("dlq: %w", err)
		}
		return int(info.State.Msgs), info.State.LastSeq, nil
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, 0, fmt.Errorf("dlq: %w", err)
	}
	for _, n := range info.State.Subjects {
		count += int(n)
	}
	return count, info.State.LastSeq, nil
}

func dlqPurge(c *common, e env) *cobra.Command {
	var (
		subject string
		yes     bool
	)
	cmd := &cobra.Command{
		Use:   "purge [--subject S]",
		Short: "Delete dead letters, after saying how many and asking",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dlqFilteredSession(cmd.Context(), c, e.stderr, subject, func(ctx context.Context, js jetstream.JetStream, filter string) error {
				n, last, err := dlqCount(ctx, js, filter)
				if err != nil {
					return err
				}
				what := "dead letter(s)"
				if subject != "" {
					what += " of " + subject
				}
				if n == 0 {
					fmt.Fprintf(e.stderr, "purged 0 %s: none to purge\n", what)
					return nil
				}
				if err := confirm(e, yes, fmt.Sprintf("purge %d %s", n, what)); err != nil {
					return err
				}
				if err := purgeUpTo(ctx, js, filter, last); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "purged %d %s\n", n, what)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&subject, "subject", "", "only dead letters of this job subject")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return cmd
}

// purgeUpTo removes the dead letters matching filter up to sequence last:
// one that arrives while the user is asked is not removed unseen.
func purgeUpTo(ctx context.Context, js jetstream.JetStream, filter string, last uint64) error {
	s, err := js.Stream(ctx, streams.DeadLetters)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSequence(last + 1)}
	if filter != "" {
		opts = append(opts, jetstream.WithPurgeSubject(filter))
	}
	if err := s.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("dlq: purge: %w", err)
	}
	return nil
}

// errNotConfirmed: a destructive command was not confirmed; it exits 1.
var errNotConfirmed = errors.New("not confirmed")

// confirm asks on stderr whether to do what, and reads the answer from
// stdin; with yes it does not ask. An answer other than y or yes, or none
// (stdin at its end, as in a script without --yes), refuses.
func confirm(e env, yes bool, what string) error {
	if yes {
		return nil
	}
	fmt.Fprintf(e.stderr, "%s? [y/N] ", what)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	if answer == "y" || answer == "yes" {
		return nil
	}
	if err != nil && answer == "" {
		fmt.Fprintln(e.stderr)
		return statusError{1, fmt.Errorf("%w: no answer on standard input; nothing done (--yes does it without asking)", errNotConfirmed)}
	}
	return statusError{1, fmt.Errorf("%w: nothing done", errNotConfirmed)}
}
