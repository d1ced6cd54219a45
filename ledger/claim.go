package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Claim is a job held by this worker through its resource record, or, when
// Final is set, a job found final, which holds nothing.
type Claim struct {
	// Final is the job's record when the job was finished before: its
	// result is to be republished, and the job must not be worked on.
	Final *JobRecord
	// Record is the resource record as this claim holds it: the claim's
	// token, lease, attempts (Prior+1 and up), deliveries and start, and the
	// last job applied to the resource.
	Record ResourceRecord
	// Prior is the number of HTTP attempts earlier claims recorded. The
	// claim counts the attempt it may make in advance, which saves a write
	// before the first request.
	Prior int

	jobID string
	key   string
	rev   uint64
	// stored is the attempt count the resource record holds: less than
	// Record.Attempts when the job record, read after the claim was
	// written, counted more attempts than the resource record did.
	stored int
	// jobRev is the job record's revision as the claim read it, 0 when
	// there was none: Finish and Release write from it.
	jobRev uint64
}

// Delivery names one delivery of a job's message.
type Delivery struct {
	// Seq is the message's sequence in the jobs stream.
	Seq uint64
	// N is its delivery count, 1 for the first.
	N uint64
}

// Claim claims job jobID, for delivery d of its message, in the record of
// its resource res: one compare-and-set write, or a create, that locks the
// resource and holds the job. When the job is final already, the claim
// comes back with Final set and holds nothing. When another live worker
// holds the resource (or the job) the error is a *BusyError.
//
// The resource is claimed before the job record is read: a delivery that
// finds the job not final while holding its resource knows that no other
// delivery can finish it meanwhile, so a job is applied at most once even
// when two of its messages run at the same time.
//
// The claim's token is made of this ledger's owner, the job and d, so that
// Claim called again for the same delivery, after an error, recognises its
// own earlier write whose reply was lost and carries on with it, instead of
// waiting out its own lease.
func (l *Ledger) Claim(ctx context.Context, jobID string, res jobs.ResourceKey, d Delivery) (*Claim, error) {
	now := l.now()
	c := &Claim{jobID: jobID, key: resourceKey(res)}
	rec := ResourceRecord{Holder: jobID, Owner: l.owner, Token: l.token(jobID, d), LeaseUntil: now.Add(l.lease), Attempts: 1, Deliveries: d.N, StartedAt: now}
	rev, err := l.kv.Create(ctx, c.key, mustJSON(rec))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("ledger: create resource record: %w", err)
		}
		if rev, err = l.takeResource(ctx, c, &rec); err != nil {
			return nil, err
		}
		if c.Final != nil {
			return c, nil
		}
	}
	c.Record, c.rev, c.stored = rec, rev, rec.Attempts
	if err := l.readJob(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Attempt records that HTTP attempt n is about to be sent, renewing the
// lease. It writes nothing when the record counts the attempt already (the
// claim counts the first) and the lease is fresh: a job may wait for its
// first attempt (for a free call slot, across a network partition), and
// only a write can tell that its claim was not taken over meanwhile. It
// fails with ErrLost if the claim was taken over.
func (l *Ledger) Attempt(ctx context.Context, c *Claim, n int) error {
	if n <= c.stored && l.fresh(c.Record.LeaseUntil) {
		return nil
	}
	c.Record.Attempts = max(c.Record.Attempts, n)
	return l.renew(ctx, c)
}

// Renew extends the claim's lease.
func (l *Ledger) Renew(ctx context.Context, c *Claim) error { return l.renew(ctx, c) }

// Sent sets the claim's attempt count to Prior+n, where n is the number of
// HTTP requests the claim actually sent: the claim counts its first attempt
// in advance, and a delivery that gives the job back before sending it (a
// token it could not read) must not leave that count behind, as attempts
// count HTTP requests only. Call it before Release.
func (c *Claim) Sent(n int) { c.Record.Attempts = c.Prior + n }

// Release gives the job back for another delivery: one write lets the
// claim's lease lapse at once, keeping its attempts and deliveries. The
// job's next delivery takes its own claim over; another job takes the
// resource after writing the claim out to this job's record.
func (l *Ledger) Release(ctx context.Context, c *Claim) error {
	c.Record.LeaseUntil = time.Time{}
	return l.write(ctx, c)
}

// Waited records, in the job record, that delivery number delivery of the
// job found its resource held and gave up waiting: a job that spends every
// delivery waiting is stranded (package stranded), though it never held a
// claim. It writes nothing for a job final or already counting as many
// deliveries.
func (l *Ledger) Waited(ctx context.Context, jobID string, delivery uint64) error {
	key := jobKey(jobID)
	job, rev, err := getRecord[JobRecord](ctx, l.kv, key, "job record")
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rec := JobRecord{JobID: jobID, State: StateRunning, Owner: l.owner, Deliveries: delivery, StartedAt: l.now()}
		_, err = l.kv.Create(ctx, key, mustJSON(rec))
	case err != nil:
		return err
	case job.State == StateFinal || job.Deliveries >= delivery:
		return nil
	default:
		job.Deliveries = delivery
		_, err = l.kv.Update(ctx, key, mustJSON(job), rev)
	}
	if err != nil && !isConflict(err) { // a conflict: someone else recorded the job meanwhile
		return fmt.Errorf("ledger: record job %q's delivery: %w", jobID, err)
	}
	return nil
}

// Finish stores the job's final result and, in the same write, frees its
// resource, recording appliedSeq (if not 0) as the last job applied to it.
// A crash can thus never leave the resource freed and the job not final, or
// the reverse. From then on Claim returns the record. It fails with ErrLost
// when the claim was taken over (and written out to the job record) or the
// job made final by someone else (Settle).
func (l *Ledger) Finish(ctx context.Context, c *Claim, appliedSeq uint64, r jobs.Encoded) error {
	rec := finalRecord{
		JobRecord: JobRecord{
			JobID: c.jobID, State: StateFinal, Owner: l.owner,
			Attempts: c.Record.Attempts, Deliveries: c.Record.Deliveries, StartedAt: c.Record.StartedAt,
			Released: &LockRelease{Token: c.Record.Token, AppliedSeq: appliedSeq},
		},
		Result: r.JSON,
	}
	key := jobKey(c.jobID)
	for range 3 {
		var err error
		if c.jobRev == 0 {
			_, err = l.kv.Create(ctx, key, mustJSON(rec))
		} else {
			_, err = l.kv.Update(ctx, key, mustJSON(rec), c.jobRev)
		}
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return fmt.Errorf("ledger: finish job %q: %w", c.jobID, err)
		}
		if done, err := l.recheck(ctx, c, &rec.JobRecord); done || err != nil {
			return err
		}
	}
	return fmt.Errorf("ledger: finish job %q: the record keeps changing", c.jobID)
}

// finalRecord is a final JobRecord as Finish writes it: with the result
// encoded already (jobs.Encoded), the bytes the worker also publishes.
type finalRecord struct {
	JobRecord
	Result json.RawMessage `json:"result"` // shallower than JobRecord.Result, so it is the one encoded
}

// recheck looks at a job record that moved on since the claim c read it,
// for Finish to write rec again from its revision. A final record
// releasing this claim is Finish's own write whose reply was lost (a
// timeout, a cancelled context): then it reports done. A record not final was written by a
// delivery of the job that gave up waiting (Waited), or by a takeover of
// the claim: the resource record tells them apart.
func (l *Ledger) recheck(ctx context.Context, c *Claim, rec *JobRecord) (done bool, err error) {
	current, rev, err := getRecord[JobRecord](ctx, l.kv, jobKey(c.jobID), "job record")
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, fmt.Errorf("job %q: record gone: %w", c.jobID, ErrLost)
	case err != nil:
		return false, err
	case current.State == StateFinal && current.Released != nil && current.Released.Token == c.Record.Token:
		return true, nil
	case current.State == StateFinal:
		return false, fmt.Errorf("job %q made final by %s: %w", c.jobID, current.Owner, ErrLost)
	}
	res, _, err := getRecord[ResourceRecord](ctx, l.kv, c.key, "resource record")
	if err != nil || res.Token != c.Record.Token {
		return false, fmt.Errorf("job %q: %w", c.jobID, ErrLost)
	}
	c.jobRev = rev
	rec.Deliveries = max(rec.Deliveries, current.Deliveries)
	return false, nil
}

// renew moves the claim's lease one lease length ahead and writes it. The
// lease counts as renewed only once the write is acknowledged: on failure
// it goes back to what it was.
func (l *Ledger) renew(ctx context.Context, c *Claim) error {
	prev := c.Record.LeaseUntil
	c.Record.LeaseUntil = l.now().Add(l.lease)
	if err := l.write(ctx, c); err != nil {
		c.Record.LeaseUntil = prev
		return err
	}
	return nil
}

func (l *Ledger) write(ctx context.Context, c *Claim) error {
	if err := l.casWrite(ctx, c.key, &c.rev, mustJSON(c.Record), c.Record.Token); err != nil {
		return fmt.Errorf("job %q: %w", c.jobID, err)
	}
	c.stored = c.Record.Attempts
	return nil
}

// token is the claim token of delivery d of job jobID by this ledger's
// owner: the same for every Claim of that delivery, and no other's, since
// an owner names one process and a process gets each delivery once.
func (l *Ledger) token(jobID string, d Delivery) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d", l.owner, jobID, d.Seq, d.N)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

// fresh reports whether a lease of this ledger's has more than half its
// length left, as far as this worker knows: no other worker can have taken
// it over yet, even with its clock somewhat ahead.
func (l *Ledger) fresh(until time.Time) bool {
	return l.now().Before(until.Add(-l.lease / 2))
}

// earliest returns the earlier of two times, ignoring a zero one.
func earliest(a, b time.Time) time.Time {
	if b.IsZero() || (!a.IsZero() && a.Before(b)) {
		return a
	}
	return b
}
