package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/streams"
)

// runStranded lists, and with --redrive republishes, the jobs left in the
// jobs stream that the consumer will not deliver again and that no worker
// finished (dlq.FindStranded):
//
//	enqueue dlq stranded [--redrive]
func runStranded(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		c       common
		redrive bool
	)
	fs := flag.NewFlagSet("enqueue dlq stranded", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, getenv)
	fs.BoolVar(&redrive, "redrive", false, "republish each stranded job as a new delivery, keeping its job id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dlq stranded: unexpected argument %q", fs.Arg(0))
	}
	nc, js, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		return fmt.Errorf("dlq stranded: bucket %s: %w", streams.LedgerBucket, err)
	}
	found, pending, err := dlq.FindStranded(ctx, js, kv)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tPUBLISHED\tSUBJECT\tJOB ID")
	for _, s := range found {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.StreamSeq, s.Published.UTC().Format(time.RFC3339), s.Subject, s.JobID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d stranded job(s)\n", len(found))
	if pending > 0 && len(found) > 0 {
		fmt.Fprintf(stderr, "%d job(s) await an acknowledgement or a redelivery: some listed may be among them (redriving one is safe: the ledger applies a job id once)\n", pending)
	}
	if !redrive {
		return nil
	}
	var errs []error
	for _, s := range found {
		if err := dlq.Redrive(ctx, js, s); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "redriven %d %s\n", s.StreamSeq, s.JobID)
	}
	fmt.Fprintf(stderr, "redriven %d of %d stranded job(s)\n", len(found)-len(errs), len(found))
	return errors.Join(errs...)
}
