package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// ResourceLock is a resource record locked by one job of this worker.
type ResourceLock struct {
	Record ResourceRecord
	key    string
	rev    uint64
}

// LockResource locks the resource for jobID. The returned record tells which
// job was last applied to the resource. When another job holds a live lock
// the error is a *BusyError.
func (l *Ledger) LockResource(ctx context.Context, res jobs.ResourceKey, jobID string) (*ResourceLock, error) {
	key := resourceKey(res)
	now := l.now()
	rec := ResourceRecord{Holder: jobID, Owner: l.owner, Token: newToken(), LeaseUntil: now.Add(l.lease)}
	rev, err := l.kv.Create(ctx, key, mustJSON(rec))
	if err == nil {
		return &ResourceLock{Record: rec, key: key, rev: rev}, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("ledger: create resource record: %w", err)
	}
	old, oldRev, err := getRecord[ResourceRecord](ctx, l.kv, key, "resource record")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, &BusyError{Until: now}
	}
	if err != nil {
		return nil, err
	}
	if err := l.foldRelease(ctx, &old); err != nil {
		return nil, err
	}
	// The same job may retake its own lock at once (a redelivery after its
	// worker died); another job waits for the lease.
	if old.Holder != "" && old.Holder != jobID && now.Before(old.LeaseUntil) {
		return nil, &BusyError{Holder: old.Holder, Until: old.LeaseUntil}
	}
	old.Holder, old.Owner, old.Token, old.LeaseUntil = jobID, l.owner, newToken(), now.Add(l.lease)
	rev, err = l.kv.Update(ctx, key, mustJSON(old), oldRev)
	if err != nil {
		if isConflict(err) {
			return nil, &BusyError{Until: now}
		}
		return nil, fmt.Errorf("ledger: lock resource record: %w", err)
	}
	return &ResourceLock{Record: old, key: key, rev: rev}, nil
}

// RenewResource extends the lock's lease.
func (l *Ledger) RenewResource(ctx context.Context, lk *ResourceLock) error {
	return l.extend(&lk.Record.LeaseUntil, func() error { return l.writeResource(ctx, lk) })
}

// ConfirmResource makes sure the lock is still held before a side effect:
// unless its lease is fresh, it renews it, failing with ErrLost if the lock
// was taken over.
func (l *Ledger) ConfirmResource(ctx context.Context, lk *ResourceLock) error {
	if l.fresh(lk.Record.LeaseUntil) {
		return nil
	}
	return l.RenewResource(ctx, lk)
}

// UnlockResource frees the lock. A non-zero appliedSeq records, in the same
// write, that the holding job with that stream sequence was applied: from
// then on an older job is superseded.
func (l *Ledger) UnlockResource(ctx context.Context, lk *ResourceLock, appliedSeq uint64) error {
	token := lk.Record.Token
	if appliedSeq > lk.Record.LastSeq {
		lk.Record.LastSeq, lk.Record.LastJobID = appliedSeq, lk.Record.Holder
	}
	lk.Record.Holder, lk.Record.Owner, lk.Record.Token, lk.Record.LeaseUntil = "", "", "", time.Time{}
	if err := l.casWrite(ctx, lk.key, &lk.rev, mustJSON(lk.Record), token); err != nil {
		return fmt.Errorf("resource lock: %w", err)
	}
	return nil
}

func (l *Ledger) writeResource(ctx context.Context, lk *ResourceLock) error {
	if err := l.casWrite(ctx, lk.key, &lk.rev, mustJSON(lk.Record), lk.Record.Token); err != nil {
		return fmt.Errorf("resource lock: %w", err)
	}
	return nil
}

// foldRelease frees a lock whose holding job was made final by a write that
// released it (FinishReleasing), and records that job as the resource's
// last applied one if it was. The job record is final, so it never changes
// again: reading it before the compare-and-set that takes the lock is safe.
func (l *Ledger) foldRelease(ctx context.Context, rec *ResourceRecord) error {
	if rec.Holder == "" {
		return nil
	}
	job, _, err := getRecord[JobRecord](ctx, l.kv, jobKey(rec.Holder), "holder's job record")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // not claimed through this ledger, or expired: the lease decides
	}
	if err != nil {
		return err
	}
	if job.State != StateFinal || job.Released == nil || job.Released.Token != rec.Token {
		return nil
	}
	if job.Released.AppliedSeq > rec.LastSeq {
		rec.LastSeq, rec.LastJobID = job.Released.AppliedSeq, rec.Holder
	}
	rec.Holder, rec.Owner, rec.Token, rec.LeaseUntil = "", "", "", time.Time{}
	return nil
}
