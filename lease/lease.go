// Package lease lets one replica at a time do a job (the certificate
// inventory, the stranded-jobs check): a lease on one key of a JetStream
// key-value bucket, fenced by the key's revision.
package lease

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

// record is the lease's value. Expires is the holder's clock: the
// replicas' clocks must agree to well within a quarter of the lease.
type record struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// Lease is a lease on one key, fenced by the key's revision: every write is
// a create or a compare-and-set on the revision last read, so of two
// replicas racing for it one wins and the other learns that it lost.
//
// A record lasts 3/4 of the lease and is renewed every quarter, leaving
// the holder a second try before it expires; a contender polls every
// eighth. So when a holder dies its lease is taken over within 7/8 of a
// lease of its last renewal.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration

	mu         sync.Mutex
	rev        uint64        // the revision this replica wrote; 0 when not holding
	validUntil time.Time     // when this replica stops relying on it
	term       chan struct{} // closed when the current term ends
	expiry     *time.Timer   // ends the term at validUntil unless renewed
}

// New returns a lease of ttl on key of kv for holder, which must differ
// between replicas (DefaultHolder). Nothing is written until Step.
func New(kv jetstream.KeyValue, key, holder string, ttl time.Duration) *Lease {
	return &Lease{kv: kv, key: key, holder: holder, ttl: ttl}
}

// RenewEvery and PollEvery are the holder's and a contender's periods.
func (l *Lease) RenewEvery() time.Duration { return l.ttl / 4 }
func (l *Lease) PollEvery() time.Duration  { return l.ttl / 8 }

// Held reports whether this replica holds the lease now, and the channel
// closed when its term ends.
func (l *Lease) Held() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 || !time.Now().Before(l.validUntil) {
		return false, nil
	}
	return true, l.term
}

// Step acquires the lease if it is free or expired, renews it if this
// replica holds it, and otherwise records that another replica does. It
// reports whether this replica holds it afterwards. An error (the bucket
// unreachable) leaves a holder holding until its record's expiry.
func (l *Lease) Step(ctx context.Context) (bool, error) {
	now := time.Now()
	rec, err := json.Marshal(record{Holder: l.holder, Expires: now.Add(l.ttl * 3 / 4)})
	if err != nil {
		return false, err
	}
	var rev uint64
	entry, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err = l.kv.Create(ctx, l.key, rec)
	case err != nil:
		held, _ := l.Held()
		return held, fmt.Errorf("lease %s: read: %w", l.key, err)
	default:
		var cur record
		if jerr := json.Unmarshal(entry.Value(), &cur); jerr == nil && cur.Holder != l.holder && now.Before(cur.Expires) {
			l.lose()
			return false, nil
		}
		// Ours, expired, or unreadable: take it, unless someone wrote
		// after our read.
		rev, err = l.kv.Update(ctx, l.key, rec, entry.Revision())
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Another replica wrote first: it holds the lease.
		l.lose()
		return false, nil
	}
	if err != nil {
		held, _ := l.Held()
		return held, fmt.Errorf("lease %s: write: %w", l.key, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A new term, unless this renews one still open: a term may have lapsed
	// (term nil) while a renewal begun in time was on its way.
	if l.rev == 0 || l.term == nil || !now.Before(l.validUntil) {
		l.endTerm()
		l.term = make(chan struct{})
	}
	l.rev, l.validUntil = rev, now.Add(l.ttl*3/4)
	if l.expiry == nil {
		l.expiry = time.AfterFunc(time.Until(l.validUntil), l.lapse)
	} else {
		l.expiry.Reset(time.Until(l.validUntil))
	}
	return true, nil
}

// lapse ends the term if it was not renewed in time: a holder cut off from
// the bucket hears nothing that would end it, yet must stop relying on the
// lease when its record expires, before another replica can take it.
func (l *Lease) lapse() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !time.Now().Before(l.validUntil) {
		l.endTerm()
	}
}

// lose records that another replica holds the lease.
func (l *Lease) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rev = 0
	l.endTerm()
	if l.expiry != nil {
		l.expiry.Stop()
	}
}

// endTerm closes the current term's channel. Callers hold l.mu.
func (l *Lease) endTerm() {
	if l.term != nil {
		close(l.term)
		l.term = nil
	}
}

// Release gives the lease up, if this replica holds it, so another can take
// over at once rather than after its expiry. Only the revision this
// replica wrote is deleted.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	l.lose()
	if rev == 0 {
		return nil
	}
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("lease %s: release: %w", l.key, err)
	}
	return nil
}

// DefaultHolder is the host name with a random suffix, so that two
// processes on one host (or a restarted one) are different holders.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "worker"
	}
	return host + "-" + rand.Text()[:8]
}

// Keep steps the lease until ctx ends: it renews the lease while it is held
// and tries for it while another replica holds it. changed hears each
// change of Held (true when this replica took the lease, false when it lost
// it); failed hears each error reaching the bucket. Both run on Keep's
// goroutine.
func (l *Lease) Keep(ctx context.Context, changed func(held bool), failed func(error)) {
	was := false
	for {
		_, err := l.Step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failed(err)
		}
		// Held, not Step's answer: a holder that cannot renew keeps the
		// lease until its record expires, and not a moment longer.
		held, _ := l.Held()
		if held != was {
			changed(held)
		}
		was = held
		wait := l.PollEvery()
		if held {
			wait = l.RenewEvery()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Hooks tell a holder what becomes of its lease. A nil hook is not called.
type Hooks struct {
	// Changed hears each change of Held: true when this replica took the
	// lease, false when it lost it.
	Changed func(held bool)
	// Failed hears each error reaching the bucket.
	Failed func(error)
}

func (h Hooks) changed(held bool) {
	if h.Changed != nil {
		h.Changed(held)
	}
}

func (h Hooks) failed(err error) {
	if h.Failed != nil {
		h.Failed(err)
	}
}

// Periodically keeps the lease and, while this replica holds it, calls do at
// once on taking it and then every interval, with the channel closed when
// the term ends. When ctx ends it gives the lease up, on a context of its
// own so that another replica takes over at once rather than at expiry, and
// returns Release's error.
func (l *Lease) Periodically(ctx context.Context, interval time.Duration, h Hooks, do func(ctx context.Context, term <-chan struct{})) error {
	acquired := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		l.Keep(ctx, func(held bool) {
			h.changed(held)
			if held {
				select {
				case acquired <- struct{}{}:
				default:
				}
			}
		}, h.failed)
	})
	next := time.NewTimer(0)
	next.Stop()
	defer next.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			continue
		case <-acquired:
		case <-next.C:
		}
		held, term := l.Held()
		if !held {
			continue // the next acquisition starts at once
		}
		start := time.Now()
		do(ctx, term)
		next.Reset(time.Until(start.Add(interval)))
	}
	wg.Wait()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return l.Release(rctx)
}
