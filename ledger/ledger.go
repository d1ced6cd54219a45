// Package ledger keeps, in a JetStream key-value bucket, what the workers
// know about each job and each Apinizer resource, so that a job takes effect
// at most once and in order across replicas, redeliveries and crashes.
//
// A job record is claimed atomically (Create, then compare-and-set Update)
// by one worker for a lease, which the worker renews while it works. The
// record counts the HTTP attempts made and, once the job is final, holds its
// result, so a redelivered or republished job is answered from the record
// instead of being applied again.
//
// A resource record is a lock with a lease (one job per resource at a time)
// and remembers the stream sequence of the last job applied to the resource,
// so an older job delivered late is recognised as superseded. The write
// that makes a job final frees its lock too (FinishReleasing): the next job
// to lock the resource reads the holder's final record. docs/ledger.md has
// the protocol write by write.
package ledger

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
)

var (
	// ErrBusy: another live worker holds the job or the resource. The error
	// is a *BusyError saying until when.
	ErrBusy = errors.New("ledger: held by another worker")
	// ErrLost: the claim was taken over (its lease had expired) or the record
	// vanished; the holder must stop without a side effect.
	ErrLost = errors.New("ledger: claim lost")
	// ErrNotFound: no record for the job id.
	ErrNotFound = errors.New("ledger: no record")
)

// BusyError says who holds a record and until when.
type BusyError struct {
	Holder string
	Until  time.Time
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("ledger: held by %s until %s", e.Holder, e.Until.Format(time.RFC3339Nano))
}

func (e *BusyError) Unwrap() error { return ErrBusy }

// State of a job record.
type State string

// Job record states.
const (
	StateRunning State = "running"
	StateFinal   State = "final"
)

// JobRecord is the stored state of one job.
type JobRecord struct {
	JobID string `json:"jobId"`
	State State  `json:"state"`
	// Owner names the worker process holding the claim, for people.
	Owner string `json:"owner"`
	// Token is unique to one claim: it tells a claim's own earlier write from
	// another claim's.
	Token      string    `json:"token"`
	LeaseUntil time.Time `json:"leaseUntil"`
	// Attempts counts the Apinizer HTTP attempts begun for the job. It is
	// raised before each request is sent (by the claim for its first), so
	// after a crash it may count a request that never left, never the
	// reverse.
	Attempts int `json:"attempts"`
	// Deliveries is the highest delivery of the job's message that claimed
	// it: a record not final whose Deliveries reached the consumer's max
	// deliver is a job the server gave up on (stranded, unless its
	// advisory is handled).
	Deliveries uint64       `json:"deliveries,omitempty"`
	StartedAt  time.Time    `json:"startedAt"`
	Result     *jobs.Result `json:"result,omitempty"`
	// Released, on a final record, says that the write that made the job
	// final also freed its resource lock (FinishReleasing).
	Released *LockRelease `json:"released,omitempty"`
}

// LockRelease is a resource lock freed by the write that made its job final:
// one write instead of two. The resource record still names the job as its
// holder; the next job to lock the resource reads this and folds it in.
type LockRelease struct {
	// Token is the lock's token: only the lock it names is freed.
	Token string `json:"token"`
	// AppliedSeq, if not 0, is the job's stream sequence, recorded as the
	// last job applied to the resource.
	AppliedSeq uint64 `json:"appliedSeq,omitempty"`
}

// ResourceRecord is the stored state of one Apinizer resource.
type ResourceRecord struct {
	// Holder is the job id holding the lock, empty when free.
	Holder     string    `json:"holder,omitempty"`
	Owner      string    `json:"owner,omitempty"`
	Token      string    `json:"token,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil"`
	// LastSeq is the jobs-stream sequence of the last job applied.
	LastSeq uint64 `json:"lastSeq"`
	// LastJobID is the id of that job.
	LastJobID string `json:"lastJobId,omitempty"`
}

// Config configures a Ledger.
type Config struct {
	// Owner identifies this worker in claims; required and unique per
	// process.
	Owner string
	// Lease is how long a claim stays valid without renewal. Default 1m.
	Lease time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Timeout bounds each round trip to the bucket. A request sent on a
	// connection that turns out to be dead gets no reply at all; without
	// its own deadline it would wait for the caller's, minutes away.
	// Default 5s.
	Timeout time.Duration
}

// Ledger reads and writes job and resource records.
type Ledger struct {
	kv    jetstream.KeyValue
	owner string
	lease time.Duration
	now   func() time.Time
}

// New returns a Ledger on the bucket kv.
func New(kv jetstream.KeyValue, cfg Config) (*Ledger, error) {
	if cfg.Owner == "" {
		return nil, errors.New("ledger: owner is required")
	}
	if cfg.Lease == 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Lease < time.Second {
		return nil, fmt.Errorf("ledger: lease %s: want at least 1s", cfg.Lease)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Ledger{kv: boundedKV{cfg.Timeout, kv}, owner: cfg.Owner, lease: cfg.Lease, now: cfg.Now}, nil
}

// JobClaim is a job record held by this worker, or a final one.
type JobClaim struct {
	Record JobRecord
	// Prior is the number of HTTP attempts earlier claims recorded. The
	// claim itself counts the attempt it may make (Record.Attempts is
	// Prior+1), which saves a write before the first request.
	Prior int
	rev   uint64
}

// ClaimJob claims the job's record for delivery number delivery of its
// message, creating the record if needed. When the record is already final
// the claim is returned with Record.State == StateFinal and must not be
// worked on. When another worker holds a live lease the error is a
// *BusyError.
func (l *Ledger) ClaimJob(ctx context.Context, jobID string, delivery uint64) (*JobClaim, error) {
	key := jobKey(jobID)
	now := l.now()
	rec := JobRecord{JobID: jobID, State: StateRunning, Owner: l.owner, Token: newToken(), LeaseUntil: now.Add(l.lease), StartedAt: now, Attempts: 1, Deliveries: delivery}
	rev, err := l.kv.Create(ctx, key, mustJSON(rec))
	if err == nil {
		return &JobClaim{Record: rec, rev: rev}, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("ledger: create job record: %w", err)
	}
	old, oldRev, err := getRecord[JobRecord](ctx, l.kv, key, "job record")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Expired or deleted between the two calls: the caller retries.
		return nil, &BusyError{Until: now}
	}
	if err != nil {
		return nil, err
	}
	if old.State == StateFinal {
		return &JobClaim{Record: old, rev: oldRev}, nil
	}
	if now.Before(old.LeaseUntil) {
		return nil, &BusyError{Holder: old.Owner, Until: old.LeaseUntil}
	}
	// Take over: the holder died or gave the job back. Attempts and the
	// original start time carry over.
	prior := old.Attempts
	old.Owner, old.Token = l.owner, newToken()
	old.LeaseUntil = now.Add(l.lease)
	old.Attempts++
	old.Deliveries = max(old.Deliveries, delivery)
	rev, err = l.kv.Update(ctx, key, mustJSON(old), oldRev)
	if err != nil {
		if isConflict(err) {
			return nil, &BusyError{Until: now}
		}
		return nil, fmt.Errorf("ledger: take over job record: %w", err)
	}
	return &JobClaim{Record: old, Prior: prior, rev: rev}, nil
}

// Attempt records that HTTP attempt n is about to be sent, renewing the
// lease. It writes nothing when the record counts the attempt already (the
// claim counts the first) and the lease is fresh: a job may wait for its
// first attempt (for a free call slot, across a network partition), and
// only a write can tell that its claim was not taken over meanwhile. It
// fails with ErrLost if the claim was taken over.
func (l *Ledger) Attempt(ctx context.Context, c *JobClaim, n int) error {
	if n <= c.Record.Attempts && l.fresh(c.Record.LeaseUntil) {
		return nil
	}
	c.Record.Attempts = max(c.Record.Attempts, n)
	return l.updateJob(ctx, c)
}

// fresh reports whether a lease of this ledger's has more than half its
// length left, as far as this worker knows: no other worker can have taken
// it over yet, even with its clock somewhat ahead.
func (l *Ledger) fresh(until time.Time) bool {
	return l.now().Before(until.Add(-l.lease / 2))
}

// Renew extends the claim's lease.
func (l *Ledger) Renew(ctx context.Context, c *JobClaim) error { return l.updateJob(ctx, c) }

// Sent sets the claim's attempt count to Prior+n, where n is the number of
// HTTP requests the claim actually sent: the claim counts its first attempt
// in advance, and a delivery that gives the job back before sending it (a
// token it could not read, a busy resource) must not leave that count
// behind, as attempts count HTTP requests only. Call it before Release.
func (c *JobClaim) Sent(n int) { c.Record.Attempts = c.Prior + n }

// Release gives the job back for another delivery, keeping its attempt
// count, so that the next worker need not wait out the lease.
func (l *Ledger) Release(ctx context.Context, c *JobClaim) error {
	c.Record.LeaseUntil = time.Time{}
	return l.write(ctx, c)
}

// Finish stores the job's final result. From then on ClaimJob returns it.
func (l *Ledger) Finish(ctx context.Context, c *JobClaim, r jobs.Result) error {
	c.Record.State = StateFinal
	c.Record.Result = &r
	return l.write(ctx, c)
}

// FinishReleasing stores the job's final result and, in the same write,
// frees the resource lock lk (if not nil), recording appliedSeq (if not 0)
// as the last job applied to the resource. A crash can thus never leave the
// resource freed and the job not final, or the reverse.
func (l *Ledger) FinishReleasing(ctx context.Context, c *JobClaim, lk *ResourceLock, appliedSeq uint64, r jobs.Result) error {
	if lk != nil {
		c.Record.Released = &LockRelease{Token: lk.Record.Token, AppliedSeq: appliedSeq}
	}
	return l.Finish(ctx, c, r)
}

func (l *Ledger) updateJob(ctx context.Context, c *JobClaim) error {
	return l.extend(&c.Record.LeaseUntil, func() error { return l.write(ctx, c) })
}

// extend moves the lease *until one lease length ahead and writes it. The
// lease counts as renewed only once the write is acknowledged: on failure
// *until goes back to what it was.
func (l *Ledger) extend(until *time.Time, write func() error) error {
	prev := *until
	*until = l.now().Add(l.lease)
	if err := write(); err != nil {
		*until = prev
		return err
	}
	return nil
}

func (l *Ledger) write(ctx context.Context, c *JobClaim) error {
	err := l.casWrite(ctx, jobKey(c.Record.JobID), &c.rev, mustJSON(c.Record), c.Record.Token)
	if err != nil {
		return fmt.Errorf("job %q: %w", c.Record.JobID, err)
	}
	return nil
}

// casWrite updates key from revision *rev, as long as the record still
// carries token. A write whose reply was lost (a cancelled context, a
// timeout) may have landed: then the record holds our token at a newer
// revision, which is adopted and written over once.
func (l *Ledger) casWrite(ctx context.Context, key string, rev *uint64, value []byte, token string) error {
	for try := 0; ; try++ {
		r, err := l.kv.Update(ctx, key, value, *rev)
		if err == nil {
			*rev = r
			return nil
		}
		if !isConflict(err) {
			return fmt.Errorf("ledger: update %s: %w", key, err)
		}
		current, currentRev, gerr := getRecord[struct {
			Token string `json:"token"`
		}](ctx, l.kv, key, "record")
		if try > 0 || gerr != nil || current.Token != token {
			return ErrLost
		}
		*rev = currentRev
	}
}

// Settle makes a job final with result r whoever holds it, unless it is
// final already; it returns the final record. It is for jobs the server gave
// up on (their workers died): no one else will finish them.
func (l *Ledger) Settle(ctx context.Context, jobID string, r jobs.Result) (JobRecord, error) {
	key := jobKey(jobID)
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
		rec.StartedAt, rec.Attempts = old.StartedAt, max(old.Attempts, r.Attempts)
		rec.Result.StartedAt, rec.Result.Attempts = rec.StartedAt, rec.Attempts
		if _, err := l.kv.Update(ctx, key, mustJSON(rec), oldRev); err == nil {
			return rec, nil
		} else if !isConflict(err) {
			return JobRecord{}, fmt.Errorf("ledger: settle: %w", err)
		}
	}
	return JobRecord{}, fmt.Errorf("ledger: settle job %q: the record keeps changing", jobID)
}

// ReadJob reads a job's record from the bucket without claiming anything;
// it is how a producer looks up a past job's result.
func ReadJob(ctx context.Context, kv jetstream.KeyValue, jobID string) (JobRecord, error) {
	rec, _, err := getRecord[JobRecord](ctx, kv, jobKey(jobID), "job record")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return JobRecord{}, fmt.Errorf("%w: job %q", ErrNotFound, jobID)
	}
	return rec, err
}

// getRecord reads the record at key and its revision; what names the
// record in errors. A missing key's error matches jetstream.ErrKeyNotFound.
func getRecord[T any](ctx context.Context, kv jetstream.KeyValue, key, what string) (rec T, rev uint64, err error) {
	entry, err := kv.Get(ctx, key)
	if err != nil {
		return rec, 0, fmt.Errorf("ledger: get %s: %w", what, err)
	}
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("ledger: decode %s: %w", what, err)
	}
	return rec, entry.Revision(), nil
}

// boundedKV gives every call of the bucket its own deadline.
type boundedKV struct {
	timeout time.Duration
	jetstream.KeyValue
}

func (b boundedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.KeyValue.Get(ctx, key)
}

func (b boundedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.KeyValue.Create(ctx, key, value, opts...)
}

func (b boundedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.KeyValue.Update(ctx, key, value, revision)
}

// newToken returns a random claim token.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Key encoding: job ids and resource names may hold characters a KV key
// cannot, so they are base64url-encoded.
func jobKey(jobID string) string { return "job." + base64.RawURLEncoding.EncodeToString([]byte(jobID)) }

// JobKey is the bucket key of a job's record, for a reader that fetches
// many records in one request (enqueue, before publishing a batch).
func JobKey(jobID string) string { return jobKey(jobID) }

func resourceKey(k jobs.ResourceKey) string {
	return "res." + base64.RawURLEncoding.EncodeToString([]byte(k.String()))
}

// isConflict reports a compare-and-set failure: the record changed since it
// was read.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// mustJSON encodes records, which have no types json can fail on.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ledger: encode record: %v", err))
	}
	return b
}
