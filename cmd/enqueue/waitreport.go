package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// progressEvery is how often, at most, --wait reports its progress. The
// first report waits as long, so a job that is quick prints none.
const progressEvery = time.Second

// progress counts the results of a wait, for the lines on stderr that show
// a person watching a long batch that it moves.
type progress struct {
	total, succeeded, failed int
	// reported is the count of results at the last line, -1 before the
	// first: a line that says nothing new is left out, so a long wait for
	// one stuck job does not fill a CI log with copies of it.
	reported int
}

func newProgress(total int) progress { return progress{total: total, reported: -1} }

func (p *progress) add(r jobs.Result) {
	if done(r) {
		p.succeeded++
	} else {
		p.failed++
	}
}

// report writes the progress line, unless it would repeat the last one.
func (p *progress) report(w io.Writer) {
	n := p.succeeded + p.failed
	if n == p.reported {
		return
	}
	p.reported = n
	fmt.Fprintf(w, "waiting: %d of %d results (%d succeeded, %d failed)\n", n, p.total, p.succeeded, p.failed)
}

// missingShown is how many ids of jobs without a result --wait names on
// stderr; --missing-file takes them all.
const missingShown = 20

// reportMissing names the jobs left without a result, the first
// missingShown of them, so that they can be looked up with enqueue result.
func reportMissing(w io.Writer, flags waitFlags, ids []string) {
	fmt.Fprintf(w, "no result within %s for %d job(s):\n", flags.timeout, len(ids))
	for _, id := range ids[:min(len(ids), missingShown)] {
		fmt.Fprintf(w, "  %s\n", id)
	}
	more := len(ids) - missingShown
	switch {
	case more <= 0:
	case flags.missingFile != "":
		fmt.Fprintf(w, "  … and %d more; all %d are in %s\n", more, len(ids), flags.missingFile)
	default:
		fmt.Fprintf(w, "  … and %d more; --missing-file FILE writes them all\n", more)
	}
}

// printResultRows writes results as a table, one row per result.
func printResultRows(w io.Writer, rs []jobs.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB ID\tSUBJECT\tSTATUS\tATTEMPTS\tERROR")
	for _, r := range rs {
		code := ""
		if r.Error != nil {
			code = r.Error.Code
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.JobID, r.Subject, r.Status, r.Attempts, code)
	}
	_ = tw.Flush()
}
