package inventory

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/lease"
)

// round lists the certificates of every project, replaces the exported
// snapshot, writes it to the bucket for listing (SnapshotKey) and
// publishes the expiry events, all only while this replica
// still holds the lease (term open). A project that cannot be listed keeps
// its series of the previous round, and the round is no success.
func (inv *Inventory) round(ctx context.Context, l *lease.Lease, term <-chan struct{}) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-term:
			cancel()
		case <-ctx.Done():
		}
	}()
	stillHeld := func() bool { ok, _ := l.Held(); return ok && ctx.Err() == nil }

	now := inv.cfg.Now()
	projects := inv.cfg.Projects
	if projects[0] == AllProjects {
		if inv.limiter.Wait(ctx) != nil {
			return
		}
		ps, err := inv.src.Projects(ctx)
		if err != nil {
			inv.failed(ctx, err, "")
			return
		}
		projects = ps
	}
	prev := inv.col.get()
	ok := true
	var entries []entry
	for _, p := range projects {
		if inv.limiter.Wait(ctx) != nil {
			return
		}
		certs, err := inv.src.Certificates(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ok = false
			inv.failed(ctx, err, p)
			for _, e := range prev.entries {
				if e.project == p {
					entries = append(entries, e)
				}
			}
			continue
		}
		for _, c := range certs {
			for _, env := range c.Environments {
				if env.NotAfter.IsZero() || env.NotBefore.IsZero() {
					ok = false
					inv.ctr.errors.WithLabelValues(reasonInvalidResponse).Inc()
					inv.logger.Warn("certificate without readable dates", slog.String("project", p),
						slog.String("certificate", c.Name), slog.String("environment", env.EnvironmentName),
						slog.String("start_date", env.StartDate), slog.String("end_date", env.EndDate))
					continue
				}
				entries = append(entries, entry{
					project: p, certificate: c.Name, environment: env.EnvironmentName,
					thumbprint: env.SHA1Thumbprint, subject: env.SubjectDN, notBefore: env.NotBefore, notAfter: env.NotAfter,
				})
			}
		}
	}

	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(a.notAfter.Compare(b.notAfter), cmp.Compare(a.project, b.project),
			cmp.Compare(a.certificate, b.certificate), cmp.Compare(a.environment, b.environment))
	})
	snap := snapshot{entries: entries, seen: len(entries), lastSuccess: prev.lastSuccess}
	if ok {
		snap.lastSuccess = now
	}
	if len(entries) > inv.cfg.MaxSeries {
		snap.entries, snap.dropped = entries[:inv.cfg.MaxSeries], len(entries)-inv.cfg.MaxSeries
		inv.logger.Warn("more certificates than the series cap: exporting the soonest-expiring",
			slog.Int("certificates", len(entries)), slog.Int("max_series", inv.cfg.MaxSeries), slog.Int("dropped", snap.dropped))
	}
	if !stillHeld() {
		return
	}
	inv.col.set(snap)
	if err := inv.writeSnapshot(ctx, entries, now, ok); err != nil && ctx.Err() == nil {
		inv.ctr.errors.WithLabelValues(reasonPublish).Inc()
		inv.logger.Warn("inventory snapshot not written; written again next round", slog.Any("error", err))
	}

	for _, e := range entries {
		if e.notAfter.Sub(now) >= inv.cfg.ExpiryWarning {
			break // sorted by notAfter: no later one is closer
		}
		if !stillHeld() {
			return
		}
		sent, dup, err := inv.pub.publish(ctx, e, now)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			inv.ctr.errors.WithLabelValues(reasonPublish).Inc()
			inv.logger.Warn("expiry event not published; retried next round", slog.Any("error", err))
		case dup:
			inv.ctr.events.WithLabelValues("duplicate").Inc()
		case sent:
			inv.ctr.events.WithLabelValues("published").Inc()
		}
	}
	inv.logger.Debug("inventory round", slog.Int("projects", len(projects)), slog.Int("certificates", snap.seen), slog.Bool("complete", ok))
}

// failed counts and logs a failed list call; project is "" for the project
// list.
func (inv *Inventory) failed(ctx context.Context, err error, project string) {
	if ctx.Err() != nil {
		return
	}
	r := reason(err)
	inv.ctr.errors.WithLabelValues(r).Inc()
	inv.logger.Warn("inventory could not list", slog.String("project", project), slog.String("reason", r), slog.Any("error", err))
}

// reason is the error counter's reason for a failed list call.
func reason(err error) string {
	var apiErr *executor.APIError
	isAPI := errors.As(err, &apiErr)
	switch {
	case errors.Is(err, executor.ErrUnauthorized):
		return reasonUnauthorized
	case isAPI && apiErr.StableCode() == executor.CodeProjectNotFound:
		return reasonProjectNotFound
	case isAPI && apiErr.Code == executor.CodeInvalidResponse:
		return reasonInvalidResponse
	case errors.Is(err, executor.ErrRetryable):
		return reasonUnavailable
	}
	return reasonRefused
}
