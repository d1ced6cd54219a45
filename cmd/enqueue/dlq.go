package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/apiops-worker/apiops-worker/dlq"
)

// runDLQ inspects and replays dead letters:
//
//	enqueue dlq list [--subject S] [--limit N]
//	enqueue dlq show ID
//	enqueue dlq replay ID | --all [--subject S]
//	enqueue dlq purge [--subject S]
//	enqueue dlq stranded [--redrive]
//
// ID is a record's sequence number (from list) or a job id.
func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("dlq: want list, show, replay, purge or stranded")
	}
	verb := args[0]
	var (
		c       common
		subject string
		limit   int
		all     bool
		redrive bool
	)
	fs := flag.NewFlagSet("enqueue dlq "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, getenv)
	switch verb {
	case "list":
		fs.StringVar(&subject, "subject", "", "only dead letters of this job subject, e.g. apiops.key.delete")
		fs.IntVar(&limit, "limit", 100, "at most this many (0: all)")
	case "replay":
		fs.BoolVar(&all, "all", false, "replay every dead letter (of --subject)")
		fs.StringVar(&subject, "subject", "", "with --all, only dead letters of this job subject")
	case "purge":
		fs.StringVar(&subject, "subject", "", "only dead letters of this job subject")
	case "stranded":
		fs.BoolVar(&redrive, "redrive", false, "republish each stranded job as a new delivery, keeping its job id")
	case "show":
	default:
		return fmt.Errorf("dlq: unknown command %q: want list, show, replay, purge or stranded", verb)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	needID := verb == "show" || (verb == "replay" && !all)
	if needID != (fs.NArg() == 1) || fs.NArg() > 1 {
		if needID {
			return fmt.Errorf("dlq %s: want one record number or job id", verb)
		}
		return fmt.Errorf("dlq %s: unexpected argument %q", verb, fs.Arg(0))
	}
	filter := ""
	if subject != "" {
		filter = dlq.Subject(subject)
	}
	nc, js, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	switch verb {
	case "stranded":
		return stranded(ctx, js, redrive, stdout, stderr)
	case "list":
		recs, err := dlq.List(ctx, js, filter, limit)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tDEAD AT\tREASON\tSUBJECT\tJOB ID\tERROR")
		for _, r := range recs {
			code := ""
			if r.Error != nil {
				code = r.Error.Code
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.DeadAt.Format(time.RFC3339), r.Reason, r.Subject, r.JobID, code)
		}
		return tw.Flush()
	case "show":
		r, err := dlq.Get(ctx, js, fs.Arg(0))
		if err != nil {
			return err
		}
		out, _ := json.MarshalIndent(struct {
			Seq uint64 `json:"seq"`
			dlq.Record
		}{r.Seq, r}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
		return nil
	case "replay":
		var recs []dlq.Record
		if all {
			if recs, err = dlq.List(ctx, js, filter, 0); err != nil {
				return err
			}
		} else {
			r, err := dlq.Get(ctx, js, fs.Arg(0))
			if err != nil {
				return err
			}
			recs = []dlq.Record{r}
		}
		var errs []error
		for _, r := range recs {
			newID, err := dlq.Replay(ctx, js, r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "replayed %s as %s\n", strconv.Quote(r.JobID), newID)
		}
		fmt.Fprintf(stderr, "replayed %d of %d dead letter(s)\n", len(recs)-len(errs), len(recs))
		return errors.Join(errs...)
	default: // purge
		if err := dlq.Purge(ctx, js, filter); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "purged")
		return nil
	}
}
