package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The steps of Claim past a first create: taking an existing resource
// record over (free, lapsed, or freed by its holder's final record), and
// reading the job record once the resource is held.

// takeResource claims an existing resource record for c, filling rec in
// from it: free, lapsed, or freed by its holder's final record. It returns
// the record's new revision, or sets c.Final, writing nothing, when the
// holder is c's own job and it is final.
func (l *Ledger) takeResource(ctx context.Context, c *Claim, rec *ResourceRecord) (uint64, error) {
	now := l.now()
	old, oldRev, err := getRecord[ResourceRecord](ctx, l.kv, c.key, "resource record")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, &BusyError{Until: now} // expired between the two calls: the caller retries
	}
	if err != nil {
		return 0, err
	}
	if old.Holder == c.jobID && old.Token == rec.Token {
		// This delivery's own claim: an earlier Claim's write landed, and
		// its reply was lost.
		*rec = old
		return oldRev, nil
	}
	holder, holderRev, err := l.foldRelease(ctx, &old)
	if err != nil {
		return 0, err
	}
	if holder != nil && holder.JobID == c.jobID && holder.State == StateFinal {
		// Finished by another delivery: its result stands.
		c.Final = holder
		return 0, nil
	}
	if old.Holder != "" && now.Before(old.LeaseUntil) {
		return 0, l.finalIfBusy(ctx, c, old)
	}
	switch old.Holder {
	case "":
	case c.jobID:
		// This job's own claim, lapsed (its worker died) or given back:
		// attempts, deliveries and start carry over.
		rec.Attempts = old.Attempts + 1
		rec.Deliveries = max(rec.Deliveries, old.Deliveries)
		rec.StartedAt = earliest(rec.StartedAt, old.StartedAt)
	default:
		// Another job's lapsed claim: its attempts and deliveries move to
		// its job record before the resource changes hands, or its
		// redelivery would count no earlier attempt (and read a repeated
		// delete's "not found" as a failure instead of "already gone").
		if err := l.writeOut(ctx, old, holder, holderRev); err != nil {
			return 0, err
		}
	}
	rec.LastSeq, rec.LastJobID = old.LastSeq, old.LastJobID
	rev, err := l.kv.Update(ctx, c.key, mustJSON(*rec), oldRev)
	if err != nil {
		if isConflict(err) {
			return 0, &BusyError{Until: now}
		}
		return 0, fmt.Errorf("ledger: claim resource record: %w", err)
	}
	return rev, nil
}

// finalIfBusy is the claim's answer when another live claim holds the
// resource: a *BusyError, unless the job is final already (a redelivery need
// not wait for a resource it will not touch): then it sets c.Final.
func (l *Ledger) finalIfBusy(ctx context.Context, c *Claim, holder ResourceRecord) error {
	job, _, err := getRecord[JobRecord](ctx, l.kv, jobKey(c.jobID), "job record")
	switch {
	case err == nil && job.State == StateFinal:
		c.Final = &job
		return nil
	case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
		return err
	}
	return &BusyError{Holder: holder.Owner, Job: holder.Holder, Until: holder.LeaseUntil}
}

// readJob reads the job record of a claim just written: a final job gives
// the resource back at once, and a running record (a claim given back or
// taken over) carries its attempts, deliveries and start over.
func (l *Ledger) readJob(ctx context.Context, c *Claim) error {
	job, rev, err := getRecord[JobRecord](ctx, l.kv, jobKey(c.jobID), "job record")
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		c.Prior = c.Record.Attempts - 1
		return nil
	case err != nil:
		return err
	case job.State == StateFinal || l.now().Before(job.LeaseUntil):
		// Final: finished by a delivery that held the resource before us.
		// Leased: claimed by a worker of the earlier protocol, which locks
		// the resource after claiming the job.
		if uerr := l.unclaim(ctx, c); uerr != nil {
			return uerr
		}
		if job.State != StateFinal {
			return &BusyError{Holder: job.Owner, Job: job.JobID, Until: job.LeaseUntil}
		}
		c.Final = &job
		return nil
	}
	c.jobRev = rev
	c.Prior = max(c.Record.Attempts-1, job.Attempts)
	c.Record.Attempts = c.Prior + 1
	c.Record.Deliveries = max(c.Record.Deliveries, job.Deliveries)
	c.Record.StartedAt = earliest(c.Record.StartedAt, job.StartedAt)
	return nil
}

// unclaim frees the resource a claim took for a job it must not work on. A
// failure is harmless: the claim lapses with its lease.
func (l *Ledger) unclaim(ctx context.Context, c *Claim) error {
	token := c.Record.Token
	c.Record.Holder, c.Record.Owner, c.Record.Token, c.Record.LeaseUntil = "", "", "", time.Time{}
	c.Record.Attempts, c.Record.Deliveries, c.Record.StartedAt = 0, 0, time.Time{}
	if err := l.casWrite(ctx, c.key, &c.rev, mustJSON(c.Record), token); err != nil && !errors.Is(err, ErrLost) {
		return fmt.Errorf("ledger: free resource record: %w", err)
	}
	return nil
}

// foldRelease frees a resource whose holding job was made final by a write
// that released it (Finish), and records that job as the resource's last
// applied one if it was. It returns the holder's job record and its
// revision, nil when there is none. A final record never changes again, so
// reading it before the compare-and-set that takes the resource is safe.
func (l *Ledger) foldRelease(ctx context.Context, rec *ResourceRecord) (*JobRecord, uint64, error) {
	if rec.Holder == "" {
		return nil, 0, nil
	}
	job, rev, err := getRecord[JobRecord](ctx, l.kv, jobKey(rec.Holder), "holder's job record")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil // still running, or expired: the lease decides
	}
	if err != nil {
		return nil, 0, err
	}
	if job.State == StateFinal && job.Released != nil && job.Released.Token == rec.Token {
		if job.Released.AppliedSeq > rec.LastSeq {
			rec.LastSeq, rec.LastJobID = job.Released.AppliedSeq, rec.Holder
		}
		rec.Holder, rec.Owner, rec.Token, rec.LeaseUntil = "", "", "", time.Time{}
		rec.Attempts, rec.Deliveries, rec.StartedAt = 0, 0, time.Time{}
	}
	return &job, rev, nil
}

// writeOut moves a lapsed claim of another job from the resource record to
// that job's record (job at revision rev, if it has one), not final and
// held by no one. A final job needs nothing: it was settled meanwhile.
func (l *Ledger) writeOut(ctx context.Context, claim ResourceRecord, job *JobRecord, rev uint64) error {
	out := JobRecord{JobID: claim.Holder, State: StateRunning, Owner: claim.Owner, Attempts: claim.Attempts, Deliveries: claim.Deliveries, StartedAt: claim.StartedAt}
	key := jobKey(claim.Holder)
	var err error
	switch {
	case job == nil:
		_, err = l.kv.Create(ctx, key, mustJSON(out))
	case job.State == StateFinal:
		return nil
	default:
		out.Attempts = max(out.Attempts, job.Attempts)
		out.Deliveries = max(out.Deliveries, job.Deliveries)
		out.StartedAt = earliest(out.StartedAt, job.StartedAt)
		_, err = l.kv.Update(ctx, key, mustJSON(out), rev)
	}
	if isConflict(err) {
		return &BusyError{Until: l.now()} // the holder's record moved on: read again
	}
	if err != nil {
		return fmt.Errorf("ledger: write out job %q's claim: %w", claim.Holder, err)
	}
	return nil
}
