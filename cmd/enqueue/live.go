package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// done reports whether a waited-for job ended as it was asked to: succeeded,
// or an apply that found its certificate live already.
func done(r jobs.Result) bool {
	return r.Status == jobs.StatusSucceeded || r.Status == jobs.StatusUnchanged
}

// printLive writes the live table of a certificate job's result (what
// Apinizer serves per environment, read back), for a person reading the
// terminal; nothing when the result has none. It goes to stderr, so that
// stdout stays one JSON result per line.
func printLive(w io.Writer, r jobs.Result) {
	if len(r.Live) == 0 {
		return
	}
	fmt.Fprintf(w, "live after %s (%s):\n", r.JobID, r.Status)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ENVIRONMENT\tSHA-1 THUMBPRINT\tSUBJECT\tNOT BEFORE\tNOT AFTER")
	for _, l := range r.Live {
		thumb := l.SHA1Thumbprint
		if thumb == "" {
			thumb = "(none)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", l.EnvironmentName, thumb, l.SubjectDN, day(l.NotBefore), day(l.NotAfter))
	}
	_ = tw.Flush()
}

// day renders a certificate date, "-" when Apinizer gave none.
func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
