package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/streams"
)

// stranded lists, and with redrive republishes, the jobs left in the jobs
// stream that the consumer will not deliver again and that no worker
// finished (dlq.FindStranded): enqueue dlq stranded [--redrive].
func stranded(ctx context.Context, js jetstream.JetStream, redrive bool, stdout, stderr io.Writer) error {
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
