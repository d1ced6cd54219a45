// Package ledger keeps, in a JetStream key-value bucket, what the workers
// know about each job and each Apinizer resource, so that a job takes effect
// at most once and in order across replicas, redeliveries and crashes.
//
// A job is claimed in the record of its resource (Claim): one
// compare-and-set write both locks the resource (one job per resource at a
// time) and holds the job for a lease, which the worker renews while it
// works. The resource record also remembers the stream sequence of the last
// job applied to it, so an older job delivered late is recognised as
// superseded.
//
// A job's own record is written when the job ends (Finish): created final
// with its result, so a redelivered or republished job is answered from it
// instead of being applied again. The same write frees the resource: the
// next job to claim it reads the final record and folds it in. A happy job
// thus costs two writes. docs/ledger.md has the protocol write by write.
package ledger

import (
	"context"
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
	// ErrLost: the claim was taken over (its lease had expired), the job
	// was made final by someone else, or a record vanished; the holder must
	// stop without a side effect.
	ErrLost = errors.New("ledger: claim lost")
	// ErrNotFound: no record for the job id.
	ErrNotFound = errors.New("ledger: no record")
)

// BusyError says who holds a record and until when.
type BusyError struct {
	// Holder is the worker holding the claim.
	Holder string
	// Job is the job it holds, when known.
	Job   string
	Until time.Time
}

func (e *BusyError) Error() string {
	if e.Job != "" {
		return fmt.Sprintf("ledger: job %s held by %s until %s", e.Job, e.Holder, e.Until.Format(time.RFC3339Nano))
	}
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

// JobRecord is the stored state of one job. A running job's claim lives in
// its resource record; the job record is written when the job ends, or, not
// final, when its claim is given back or written out by a takeover (and
// then holds no lease). ReadClaim reads both.
type JobRecord struct {
	JobID string `json:"jobId"`
	State State  `json:"state"`
	// Owner names the worker process that wrote the record, for people.
	Owner string `json:"owner"`
	// Token and LeaseUntil are set only on a record claimed by a worker of
	// the earlier protocol, which claimed the job record itself: Claim
	// respects such a lease.
	Token      string    `json:"token,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// Attempts counts the Apinizer HTTP attempts begun for the job. It is
	// raised before each request is sent (by the claim for its first), so
	// after a crash it may count a request that never left, never the
	// reverse.
	Attempts int `json:"attempts"`
	// Deliveries is the highest delivery of the job's message that claimed
	// it or waited for its resource: a job not final whose Deliveries
	// reached the consumer's max deliver is a job the server gave up on
	// (stranded, unless its advisory is handled).
	Deliveries uint64       `json:"deliveries,omitempty"`
	StartedAt  time.Time    `json:"startedAt"`
	Result     *jobs.Result `json:"result,omitempty"`
	// Released, on a final record, says that the write that made the job
	// final also freed its resource (Finish).
	Released *LockRelease `json:"released,omitempty"`
}

// LockRelease is a resource freed by the write that made its job final: one
// write instead of two. The resource record still names the job as its
// holder; the next job to claim the resource reads this and folds it in.
type LockRelease struct {
	// Token is the claim's token: only the claim it names is freed.
	Token string `json:"token"`
	// AppliedSeq, if not 0, is the job's stream sequence, recorded as the
	// last job applied to the resource.
	AppliedSeq uint64 `json:"appliedSeq,omitempty"`
}

// ResourceRecord is the stored state of one Apinizer resource: the claim of
// the job working on it, if any, and the last job applied to it.
type ResourceRecord struct {
	// Holder is the id of the job holding the resource, empty when free. A
	// holder whose job record is final and released this claim's token no
	// longer holds it, whatever the record says.
	Holder string `json:"holder,omitempty"`
	// Owner names the worker process holding the claim, for people.
	Owner string `json:"owner,omitempty"`
	// Token is unique to one claim: it tells a claim's own earlier write
	// from another claim's.
	Token      string    `json:"token,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil"`
	// Attempts, Deliveries and StartedAt are the holder's, as in its
	// JobRecord: they move there if another job takes the resource over.
	Attempts   int       `json:"attempts,omitempty"`
	Deliveries uint64    `json:"deliveries,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
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
