package inventory

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseKey is the lease's key in the inventory bucket.
const leaseKey = "lease"

// leaseRecord is the lease's value. Expires is the holder's clock: the
// replicas' clocks must agree to well within a quarter of the lease.
type leaseRecord struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// lease is a lease on one key, fenced by the key's revision: every write is
// a create or a compare-and-set on the revision last read, so of two
// replicas racing for it one wins and the other learns that it lost.
//
// A record lasts 3/4 of the lease and is renewed every quarter, leaving
// the holder a second try before it expires; a contender polls every
// eighth. So when a holder dies its lease is taken over within 7/8 of a
// lease of its last renewal.
type lease struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration

	mu         sync.Mutex
	rev        uint64        // the revision this replica wrote; 0 when not holding
	validUntil time.Time     // when this replica stops relying on it
	term       chan struct{} // closed when the current term ends
}

func newLease(kv jetstream.KeyValue, holder string, ttl time.Duration) *lease {
	return &lease{kv: kv, holder: holder, ttl: ttl}
}

// renewEvery and pollEvery are the holder's and a contender's periods.
func (l *lease) renewEvery() time.Duration { return l.ttl / 4 }
func (l *lease) pollEvery() time.Duration  { return l.ttl / 8 }

// held reports whether this replica holds the lease now, and the channel
// closed when its term ends.
func (l *lease) held() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 || !time.Now().Before(l.validUntil) {
		return false, nil
	}
	return true, l.term
}

// step acquires the lease if it is free or expired, renews it if this
// replica holds it, and otherwise records that another replica does. It
// reports whether this replica holds it afterwards. An error (the bucket
// unreachable) leaves a holder holding until its record's expiry.
func (l *lease) step(ctx context.Context) (bool, error) {
	now := time.Now()
	rec, err := json.Marshal(leaseRecord{Holder: l.holder, Expires: now.Add(l.ttl * 3 / 4)})
	if err != nil {
		return false, err
	}
	var rev uint64
	entry, err := l.kv.Get(ctx, leaseKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err = l.kv.Create(ctx, leaseKey, rec)
	case err != nil:
		held, _ := l.held()
		return held, fmt.Errorf("inventory: read lease: %w", err)
	default:
		var cur leaseRecord
		if jerr := json.Unmarshal(entry.Value(), &cur); jerr == nil && cur.Holder != l.holder && now.Before(cur.Expires) {
			l.lose()
			return false, nil
		}
		// Ours, expired, or unreadable: take it, unless someone wrote
		// after our read.
		rev, err = l.kv.Update(ctx, leaseKey, rec, entry.Revision())
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Another replica wrote first: it holds the lease.
		l.lose()
		return false, nil
	}
	if err != nil {
		held, _ := l.held()
		return held, fmt.Errorf("inventory: write lease: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 || !now.Before(l.validUntil) {
		l.endTerm()
		l.term = make(chan struct{})
	}
	l.rev, l.validUntil = rev, now.Add(l.ttl*3/4)
	return true, nil
}

// lose records that another replica holds the lease.
func (l *lease) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rev = 0
	l.endTerm()
}

// endTerm closes the current term's channel. Callers hold l.mu.
func (l *lease) endTerm() {
	if l.term != nil {
		close(l.term)
		l.term = nil
	}
}

// release gives the lease up, if this replica holds it, so another can take
// over at once rather than after its expiry. Only the revision this
// replica wrote is deleted.
func (l *lease) release(ctx context.Context) error {
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	l.lose()
	if rev == 0 {
		return nil
	}
	if err := l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("inventory: release lease: %w", err)
	}
	return nil
}

// defaultHolder is the host name with a random suffix, so that two
// processes on one host (or a restarted one) are different holders.
func defaultHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "worker"
	}
	return host + "-" + rand.Text()[:8]
}
