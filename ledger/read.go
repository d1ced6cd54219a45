package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// ReadJob reads a job's record from the bucket without claiming anything;
// it is how a producer looks up a past job's result. A running job's claim
// is in its resource record: ReadClaim reads both.
func ReadJob(ctx context.Context, kv jetstream.KeyValue, jobID string) (JobRecord, error) {
	rec, _, err := getRecord[JobRecord](ctx, kv, jobKey(jobID), "job record")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return JobRecord{}, fmt.Errorf("%w: job %q", ErrNotFound, jobID)
	}
	return rec, err
}

// ReadClaim reads what the ledger knows of job jobID on resource res: its
// job record and, unless that is final, the claim its resource record holds
// for it, as one record (state running, the claim's owner and lease, the
// higher attempt and delivery counts). It fails with ErrNotFound when
// neither knows the job.
func ReadClaim(ctx context.Context, kv jetstream.KeyValue, jobID string, res jobs.ResourceKey) (JobRecord, error) {
	job, err := ReadJob(ctx, kv, jobID)
	switch {
	case err != nil && !errors.Is(err, ErrNotFound):
		return JobRecord{}, err
	case err == nil && job.State == StateFinal:
		return job, nil
	}
	claim, _, rerr := getRecord[ResourceRecord](ctx, kv, resourceKey(res), "resource record")
	switch {
	case rerr != nil && !errors.Is(rerr, jetstream.ErrKeyNotFound):
		return JobRecord{}, rerr
	case rerr != nil || claim.Holder != jobID:
		return job, err // the job record alone, or ErrNotFound
	}
	if final, _, ferr := getRecord[JobRecord](ctx, kv, jobKey(jobID), "job record"); ferr == nil && final.State == StateFinal {
		return final, nil // finished between the two reads
	}
	job.JobID, job.State, job.Owner, job.LeaseUntil = jobID, StateRunning, claim.Owner, claim.LeaseUntil
	job.Attempts = max(job.Attempts, claim.Attempts)
	job.Deliveries = max(job.Deliveries, claim.Deliveries)
	job.StartedAt = earliest(job.StartedAt, claim.StartedAt)
	return job, nil
}

// Settle makes a job final with result r whoever holds it, unless it is
// final already; it returns the final record. It is for jobs the server gave
// up on (their workers died): no one else will finish them. res, unless
// zero (an invalid job), is the job's resource: the attempts of a claim
// there count. Settle frees no resource: a worker may still be calling
// Apinizer for the job, so its claim lapses with its lease.
func (l *Ledger) Settle(ctx context.Context, jobID string, res jobs.ResourceKey, r jobs.Result) (JobRecord, error) {
	key := jobKey(jobID)
	if res != (jobs.ResourceKey{}) {
		claim, _, err := getRecord[ResourceRecord](ctx, l.kv, resourceKey(res), "resource record")
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return JobRecord{}, err
		}
		if err == nil && claim.Holder == jobID {
			r.Attempts = max(r.Attempts, claim.Attempts)
			r.StartedAt = earliest(r.StartedAt, claim.StartedAt)
		}
	}
	for range 5 {
		rec := JobRecord{JobID: jobID, State: StateFinal, Owner: l.owner, StartedAt: r.StartedAt, Attempts: r.Attempts, Result: &r}
		old, oldRev, err := getRecord[JobRecord](ctx, l.kv, key, "job record")
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := l.kv.Create(ctx, key, mustJSON(rec)); err == nil {
				return rec, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return JobRecord{}, fmt.Errorf("ledger: settle: %w", err)
			}
			continue
		case err != nil:
			return JobRecord{}, err
		}
		if old.State == StateFinal {
			return old, nil
		}
		rec.StartedAt, rec.Attempts = earliest(old.StartedAt, rec.StartedAt), max(old.Attempts, r.Attempts)
		rec.Result.StartedAt, rec.Result.Attempts = rec.StartedAt, rec.Attempts
		if _, err := l.kv.Update(ctx, key, mustJSON(rec), oldRev); err == nil {
			return rec, nil
		} else if !isConflict(err) {
			return JobRecord{}, fmt.Errorf("ledger: settle: %w", err)
		}
	}
	return JobRecord{}, fmt.Errorf("ledger: settle job %q: the record keeps changing", jobID)
}
