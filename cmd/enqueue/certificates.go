package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/inventory"
)

// newCertificatesCmd lists what the certificate inventory saw, from NATS alone
// (the snapshot its lease holder writes each round), so that no Apinizer
// token is needed here:
//
//	enqueue certificates expiring [--within 30d]
func newCertificatesCmd(c *common, e env) *cobra.Command {
	within := 30 * 24 * time.Hour
	expiring := &cobra.Command{
		Use:   "expiring [--within 30d]",
		Short: "List the certificates expiring soon, from the inventory's latest round (no Apinizer token needed)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("certificates expiring: unexpected argument %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stdout, stderr := cmd.Context(), e.stdout, e.stderr
			// One bound for connecting and reading: a listing has no reason to wait.
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			nc, js, err := c.connect(ctx, stderr)
			if err != nil {
				return err
			}
			defer nc.Close()
			snap, err := inventory.ReadSnapshot(ctx, js)
			if err != nil {
				return fmt.Errorf("certificates expiring: %w", err)
			}
			now := time.Now()
			printExpiring(stdout, snap, now, within)
			notes(stderr, snap, now)
			return nil
		},
	}
	expiring.Flags().Func("within", "list certificates expiring within this period: days (30d, or just 30) or a duration (720h); default 30d", func(v string) error {
		d, err := parseWithin(v)
		if err == nil {
			within = d
		}
		return err
	})
	certs := &cobra.Command{
		Use:   "certificates",
		Short: "What the certificate inventory saw",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return unknown(cmd, args, e.stderr)
		},
	}
	certs.AddCommand(expiring)
	return certs
}

// parseWithin reads --within: "30d", "720h" (any Go duration) or "30"
// (days). It must be positive.
func parseWithin(v string) (time.Duration, error) {
	// The flag package names the flag and quotes the value already.
	bad := errors.New("want a positive number of days (30d or 30) or a duration with its unit (720h)")
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok || !strings.ContainsAny(v, "hmsuµn") {
		n, err := strconv.Atoi(days)
		if err != nil || n > 100*365 {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, bad
		}
	}
	if d <= 0 {
		return 0, bad
	}
	return d, nil
}

// printExpiring writes the table of the certificates whose notAfter is
// within the period from now, expired ones included, soonest first.
func printExpiring(w io.Writer, snap inventory.Snapshot, now time.Time, within time.Duration) {
	rows := slices.DeleteFunc(slices.Clone(snap.Certificates), func(c inventory.Certificate) bool {
		return c.NotAfter.Sub(now) >= within
	})
	slices.SortStableFunc(rows, func(a, b inventory.Certificate) int {
		return cmp.Or(cmp.Compare(inventory.DaysLeft(a.NotAfter, now), inventory.DaysLeft(b.NotAfter, now)),
			cmp.Compare(a.ProjectName, b.ProjectName), cmp.Compare(a.CertificateName, b.CertificateName),
			cmp.Compare(a.EnvironmentName, b.EnvironmentName))
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAYS LEFT\tPROJECT\tCERTIFICATE\tENVIRONMENT\tSUBJECT\tNOT AFTER")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", inventory.DaysLeft(r.NotAfter, now), r.ProjectName,
			r.CertificateName, r.EnvironmentName, r.SubjectDN, r.NotAfter.UTC().Format(time.RFC3339))
	}
	tw.Flush()
}

// notes tells, on stderr, how old the snapshot is and what it may miss.
func notes(w io.Writer, snap inventory.Snapshot, now time.Time) {
	age := now.Sub(snap.TakenAt).Truncate(time.Second)
	fmt.Fprintf(w, "inventory of %s (%s ago)\n", snap.TakenAt.Format(time.RFC3339), age)
	if snap.Interval > 0 && age > 3*snap.Interval {
		fmt.Fprintf(w, "warning: the inventory is stale: no round for %s, every %s expected (is a worker with the inventory running?)\n", age, snap.Interval)
	}
	if !snap.Complete {
		fmt.Fprintln(w, "warning: a project could not be listed in that round: its certificates are from an earlier one (see apiops_inventory_errors_total)")
	}
	if snap.Omitted > 0 {
		fmt.Fprintf(w, "warning: %d later-expiring certificate(s) left out of the snapshot to bound its size\n", snap.Omitted)
	}
}
