package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/lease"
)

// TestMain fails the run if a test leaves a Keep or Periodically loop, a
// server or a connection behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const key = "lease.test"

// bucket returns a fresh key-value bucket on a server of the test's own.
func bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "LEASES"})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// errDown is what an interposed bucket answers while it is down.
var errDown = errors.New("bucket unreachable")

// interposedKV is the test's real bucket with two interventions: it can run
// another replica's step between a read and the write that follows it, and
// it can be taken down, as a replica cut off from NATS sees it.
type interposedKV struct {
	jetstream.KeyValue

	mu       sync.Mutex
	afterGet func() // run once, after the next read
	down     bool
	reads    int // reads answered by the bucket
}

func (kv *interposedKV) readCount() int {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.reads
}

func (kv *interposedKV) setDown(down bool) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.down = down
}

func (kv *interposedKV) isDown() bool {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.down
}

func (kv *interposedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if kv.isDown() {
		return nil, errDown
	}
	entry, err := kv.KeyValue.Get(ctx, key)
	kv.mu.Lock()
	kv.reads++
	f := kv.afterGet
	kv.afterGet = nil
	kv.mu.Unlock()
	if f != nil {
		f()
	}
	return entry, err
}

func (kv *interposedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if kv.isDown() {
		return 0, errDown
	}
	return kv.KeyValue.Create(ctx, key, value, opts...)
}

func (kv *interposedKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if kv.isDown() {
		return 0, errDown
	}
	return kv.KeyValue.Update(ctx, key, value, rev)
}

func (kv *interposedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if kv.isDown() {
		return errDown
	}
	return kv.KeyValue.Delete(ctx, key, opts...)
}

// step steps l and fails the test on an error or an answer other than want.
func step(t *testing.T, l *lease.Lease, name string, want bool) {
	t.Helper()
	held, err := l.Step(t.Context())
	if err != nil {
		t.Fatalf("%s: step: %v", name, err)
	}
	if held != want {
		t.Fatalf("%s: step says held %v, want %v", name, held, want)
	}
	if h, _ := l.Held(); h != want {
		t.Fatalf("%s: Held says %v after a step that said %v", name, h, want)
	}
}

// closed reports whether a term's channel is closed.
func closed(term <-chan struct{}) bool {
	select {
	case <-term:
		return true
	default:
		return false
	}
}

// lapse waits for l's term to run out, which is when its record in the
// bucket expires too.
func lapse(t *testing.T, l *lease.Lease, ttl time.Duration) {
	t.Helper()
	poll.Until(t, 2*ttl, "the holder's term to lapse", func() bool { held, _ := l.Held(); return !held })
}

func TestOneReplicaHoldsTheLeaseAtATime(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprintf("%d replicas stepping at once", n), func(t *testing.T) {
			t.Parallel()
			kv := bucket(t)
			leases := make([]*lease.Lease, n)
			for i := range leases {
				leases[i] = lease.New(kv, key, fmt.Sprintf("replica-%d", i), time.Minute)
			}
			// stepAll steps every replica at once and returns the one
			// holding the lease afterwards.
			stepAll := func() int {
				t.Helper()
				start := make(chan struct{})
				answers := make([]bool, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i, l := range leases {
					wg.Go(func() {
						<-start
						answers[i], errs[i] = l.Step(t.Context())
					})
				}
				close(start)
				wg.Wait()
				holder := -1
				for i := range leases {
					if errs[i] != nil {
						t.Fatalf("replica-%d: %v", i, errs[i])
					}
					if held, _ := leases[i].Held(); held != answers[i] {
						t.Fatalf("replica-%d: Held %v after a step that said %v", i, held, answers[i])
					}
					if !answers[i] {
						continue
					}
					if holder >= 0 {
						t.Fatalf("replica-%d and replica-%d both hold the lease", holder, i)
					}
					holder = i
				}
				if holder < 0 {
					t.Fatal("no replica holds the lease")
				}
				return holder
			}

			first := stepAll()
			for range 3 {
				if h := stepAll(); h != first {
					t.Fatalf("replica-%d took the lease from replica-%d, which renews it", h, first)
				}
			}
			if err := leases[first].Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			stepAll()
		})
	}
}

func TestAHolderThatRenewsKeepsTheLease(t *testing.T) {
	t.Parallel()
	const ttl = time.Second
	kv := bucket(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var mu sync.Mutex
	changes := map[string][]bool{}
	leases := map[string]*lease.Lease{}
	for _, name := range []string{"a", "b"} {
		l := lease.New(kv, key, name, ttl)
		leases[name] = l
		wg.Go(func() {
			l.Keep(ctx, func(held bool) {
				mu.Lock()
				defer mu.Unlock()
				changes[name] = append(changes[name], held)
			}, func(err error) { t.Errorf("%s: %v", name, err) })
		})
	}
	holder := func() string {
		var names []string
		for name, l := range leases {
			if held, _ := l.Held(); held {
				names = append(names, name)
			}
		}
		if len(names) > 1 {
			t.Fatalf("%v all hold the lease", names)
		}
		if len(names) == 0 {
			return ""
		}
		return names[0]
	}
	poll.Until(t, 5*time.Second, "a replica to take the lease", func() bool { return holder() != "" })
	first := holder()
	entry, err := kv.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	// Eight renewals take two leases: the holder must hold it throughout.
	rev := entry.Revision()
	poll.Until(t, 4*ttl, "eight renewals", func() bool {
		if h := holder(); h != first {
			t.Fatalf("%q holds the lease, want %q, which renews it", h, first)
		}
		e, err := kv.Get(t.Context(), key)
		return err == nil && e.Revision() >= rev+8
	})
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for name := range leases {
		want := []bool(nil)
		if name == first {
			want = []bool{true}
		}
		if fmt.Sprint(changes[name]) != fmt.Sprint(want) {
			t.Errorf("%s heard changes %v, want %v", name, changes[name], want)
		}
	}
}

func TestALapsedLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	const ttl = 400 * time.Millisecond
	kv := bucket(t)
	a, b := lease.New(kv, key, "a", ttl), lease.New(kv, key, "b", ttl)
	renewed := time.Now()
	step(t, a, "a", true)
	_, term := a.Held()
	step(t, b, "b", false)

	// a stops renewing; b tries as a contender does.
	poll.Until(t, 2*ttl, "b to take the lapsed lease", func() bool {
		held, err := b.Step(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return held
	})
	took := time.Since(renewed)
	if took < ttl*3/4 {
		t.Errorf("b took the lease %s after a's renewal, before its record lasted 3/4 of the lease (%s)", took, ttl*3/4)
	}
	if took > ttl {
		t.Errorf("b took the lease %s after a's renewal, want within the lease (%s)", took, ttl)
	}
	if held, _ := a.Held(); held {
		t.Error("a still relies on the lease after b took it")
	}
	// The term is closed by a timer at the moment a stops relying on the
	// lease, which b's takeover may beat by a scheduling delay.
	select {
	case <-term:
	case <-time.After(ttl):
		t.Error("a's term is still open a lease after it lapsed")
	}
	step(t, a, "a, back", false)
	step(t, b, "b", true)
}

// TestADeposedWriteIsFenced runs another replica's step between a
// replica's read of the lease and its write: the write, made on the
// revision read, must fail, and the replica learn that it lost.
func TestADeposedWriteIsFenced(t *testing.T) {
	t.Parallel()
	const ttl = 400 * time.Millisecond
	tests := []struct {
		name    string
		arrange func(t *testing.T, a, b *lease.Lease) // b is a on the plain bucket
	}{
		{
			name:    "two replicas taking a free lease: the second create fails",
			arrange: func(*testing.T, *lease.Lease, *lease.Lease) {},
		},
		{
			name: "a holder renewing after its term lapsed and another took it: its update fails",
			arrange: func(t *testing.T, a, _ *lease.Lease) {
				step(t, a, "a", true)
				lapse(t, a, ttl)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := bucket(t)
			akv := &interposedKV{KeyValue: kv}
			a, b := lease.New(akv, key, "a", ttl), lease.New(kv, key, "b", ttl)
			tt.arrange(t, a, b)
			_, aTerm := a.Held()
			akv.afterGet = func() { step(t, b, "b, between a's read and write", true) }

			step(t, a, "a, writing on what it read", false)
			if aTerm != nil && !closed(aTerm) {
				t.Error("a's term is still open after it lost the lease")
			}
			step(t, b, "b", true)
		})
	}
}

// TestARenewalLandingAfterItsTermLapsedStartsANewTerm holds a renewal up
// between its read and its write until the holder's term has lapsed: the
// renewal still succeeds (no one else wrote), and must give the holder a
// new, open term rather than none.
func TestARenewalLandingAfterItsTermLapsedStartsANewTerm(t *testing.T) {
	t.Parallel()
	const ttl = 400 * time.Millisecond
	akv := &interposedKV{KeyValue: bucket(t)}
	a := lease.New(akv, key, "a", ttl)
	took := time.Now()
	step(t, a, "a", true)
	_, old := a.Held()
	// Renew late in the term (its record lasts 3/4 of the lease), so that the
	// renewed record outlasts the wait below by a good margin.
	poll.Until(t, ttl, "half the lease to pass", func() bool { return time.Since(took) >= ttl/2 })
	akv.afterGet = func() {
		poll.Until(t, 2*ttl, "a's term to end while its renewal is on the way", func() bool { return closed(old) })
	}

	step(t, a, "a, renewing late", true)
	held, term := a.Held()
	if !held || term == nil || closed(term) {
		t.Fatalf("after the renewal: held %v, term %v (closed %v), want held with an open term", held, term, term != nil && closed(term))
	}
}

func TestGivingTheLeaseUp(t *testing.T) {
	t.Parallel()
	const ttl = 400 * time.Millisecond
	tests := []struct {
		name    string
		arrange func(t *testing.T, a, b *lease.Lease) // a gives the lease up next
		deleted bool                                  // whether a's release frees the key
	}{
		{
			name:    "the holder gives it up: another takes it at once",
			arrange: func(t *testing.T, a, b *lease.Lease) { step(t, a, "a", true); step(t, b, "b", false) },
			deleted: true,
		},
		{
			name:    "a replica not holding it: the holder keeps it",
			arrange: func(t *testing.T, a, b *lease.Lease) { step(t, b, "b", true); step(t, a, "a", false) },
		},
		{
			name: "a deposed holder: the new holder keeps it",
			arrange: func(t *testing.T, a, b *lease.Lease) {
				step(t, a, "a", true)
				lapse(t, a, ttl)
				step(t, b, "b", true)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := bucket(t)
			a, b := lease.New(kv, key, "a", ttl), lease.New(kv, key, "b", ttl)
			tt.arrange(t, a, b)
			before, err := kv.Get(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			_, term := a.Held()

			if err := a.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if held, _ := a.Held(); held {
				t.Error("a holds the lease after giving it up")
			}
			if term != nil && !closed(term) {
				t.Error("a's term is still open after it gave the lease up")
			}
			after, err := kv.Get(t.Context(), key)
			switch {
			case tt.deleted && !errors.Is(err, jetstream.ErrKeyNotFound):
				t.Errorf("the lease's key after a gave it up: %v, want it deleted", err)
			case !tt.deleted && err != nil:
				t.Errorf("the lease's key after a gave up a lease it did not hold: %v, want b's record", err)
			case !tt.deleted && after.Revision() != before.Revision():
				t.Errorf("a's release changed the key's revision from %d to %d", before.Revision(), after.Revision())
			}
			step(t, b, "b", true)
			step(t, a, "a", false)
		})
	}
}

// replica runs Periodically on a lease and records what it hears.
type replica struct {
	lease  *lease.Lease
	cancel context.CancelFunc
	done   chan error // Periodically's answer

	mu      sync.Mutex
	changes []bool
	changed []time.Time
	errs    []error
	runs    []time.Time
	// unheld counts runs made while the replica did not hold the lease or
	// with its term ended.
	unheld int
	// ended counts runs that returned because their term ended.
	ended int
}

// start runs Periodically for holder on kv until the test ends; do runs
// until its term or ctx ends if block is set, else returns at once.
func start(t *testing.T, kv jetstream.KeyValue, holder string, ttl, interval time.Duration, block bool) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &replica{lease: lease.New(kv, key, holder, ttl), cancel: cancel, done: make(chan error, 1)}
	hooks := lease.Hooks{
		Changed: func(held bool) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.changes = append(r.changes, held)
			r.changed = append(r.changed, time.Now())
		},
		Failed: func(err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.errs = append(r.errs, err)
		},
	}
	go func() {
		r.done <- r.lease.Periodically(ctx, interval, hooks, func(ctx context.Context, term <-chan struct{}) {
			held, _ := r.lease.Held()
			r.mu.Lock()
			r.runs = append(r.runs, time.Now())
			if !held || closed(term) {
				r.unheld++
			}
			r.mu.Unlock()
			if !block {
				return
			}
			select {
			case <-term:
				r.mu.Lock()
				r.ended++
				r.mu.Unlock()
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends r's context and returns Periodically's answer.
func (r *replica) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Periodically did not return within 10s of its context ending")
		return nil
	}
}

func (r *replica) runCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

func (r *replica) heard() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.changes...)
}

func TestPeriodicallyWorksOnlyWhileHolding(t *testing.T) {
	t.Parallel()
	const ttl, interval = time.Second, 20 * time.Millisecond
	kv := bucket(t)
	a, b := start(t, kv, "a", ttl, interval, false), start(t, kv, "b", ttl, interval, false)
	poll.Until(t, 5*time.Second, "ten runs", func() bool { return a.runCount()+b.runCount() >= 10 })
	holder, other := a, b
	if b.runCount() > 0 {
		holder, other = b, a
	}
	if n := other.runCount(); n > 0 {
		t.Fatalf("both replicas ran the work (%d and %d runs)", holder.runCount(), n)
	}
	if fmt.Sprint(holder.heard()) != "[true]" || other.heard() != nil {
		t.Errorf("the holder heard %v and the other %v, want [true] and none", holder.heard(), other.heard())
	}

	// The holder stops: it gives the lease up, so the other takes it at its
	// next poll rather than at the record's expiry.
	if err := holder.stop(t); err != nil {
		t.Errorf("Periodically: %v", err)
	}
	stopped := time.Now()
	poll.Until(t, ttl/2, "the other replica to run the work", func() bool { return other.runCount() > 0 })
	t.Logf("the other replica ran the work %s after the holder stopped", time.Since(stopped))
	for _, r := range []*replica{a, b} {
		r.mu.Lock()
		if r.unheld > 0 {
			t.Errorf("%d runs without the lease", r.unheld)
		}
		if len(r.errs) > 0 {
			t.Errorf("failures: %v", r.errs)
		}
		r.mu.Unlock()
	}
}

func TestPeriodicallyRunsAtOnceThenEveryInterval(t *testing.T) {
	t.Parallel()
	const ttl, interval = time.Second, 150 * time.Millisecond
	r := start(t, bucket(t), "a", ttl, interval, false)
	poll.Until(t, 5*time.Second, "four runs", func() bool { return r.runCount() >= 4 })
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.changed) != 1 {
		t.Fatalf("heard %v, want one change", r.changes)
	}
	if d := r.runs[0].Sub(r.changed[0]); d >= interval {
		t.Errorf("the first run came %s after taking the lease, want at once", d)
	}
	for i := 1; i < len(r.runs); i++ {
		if gap := r.runs[i].Sub(r.runs[i-1]); gap < interval {
			t.Errorf("run %d came %s after the one before, want at least %s", i, gap, interval)
		}
	}
}

func TestPeriodicallyLosesTheLeaseWhenCutOff(t *testing.T) {
	t.Parallel()
	const ttl, interval = 400 * time.Millisecond, 50 * time.Millisecond
	kv := bucket(t)
	akv := &interposedKV{KeyValue: kv}
	a := start(t, akv, "a", ttl, interval, true)
	poll.Until(t, 5*time.Second, "a to run the work", func() bool { return a.runCount() == 1 })

	// Cut off, a cannot renew: it hears why, and its term ends (the run
	// with it) when its record expires.
	akv.setDown(true)
	cut := time.Now()
	poll.Until(t, 2*ttl, "a to lose the lease", func() bool { return fmt.Sprint(a.heard()) == "[true false]" })
	poll.Until(t, ttl/4, "a's run to end with its term", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.ended == 1
	})
	t.Logf("a lost the lease %s after it was cut off", time.Since(cut))
	a.mu.Lock()
	for _, err := range a.errs {
		if !errors.Is(err, errDown) {
			t.Errorf("a heard %v, want %v", err, errDown)
		}
	}
	if len(a.errs) == 0 {
		t.Error("a heard no failure while cut off")
	}
	a.mu.Unlock()

	// b takes the lease; a, back, leaves it to b.
	b := start(t, kv, "b", ttl, interval, true)
	poll.Until(t, 2*ttl, "b to run the work", func() bool { return b.runCount() == 1 })
	akv.setDown(false)
	reads := akv.readCount()
	poll.Until(t, 2*ttl, "a to step twice more", func() bool { return akv.readCount() >= reads+2 })
	if got := fmt.Sprint(a.heard()); got != "[true false]" || a.runCount() != 1 {
		t.Fatalf("a, back, heard %s and ran the work %d times, want [true false] and once: b holds the lease", got, a.runCount())
	}

	// b gives it up; a takes it.
	if err := b.stop(t); err != nil {
		t.Errorf("b: Periodically: %v", err)
	}
	poll.Until(t, ttl, "a to run the work again", func() bool { return a.runCount() == 2 })
	if got := fmt.Sprint(a.heard()); got != "[true false true]" {
		t.Errorf("a heard %s, want [true false true]", got)
	}
	a.mu.Lock()
	if a.unheld > 0 {
		t.Errorf("a ran the work %d times without the lease", a.unheld)
	}
	a.mu.Unlock()

	// a stops, in the middle of its run: the run ends and a gives the lease
	// up.
	if err := a.stop(t); err != nil {
		t.Errorf("a: Periodically: %v", err)
	}
	if _, err := kv.Get(t.Context(), key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the lease's key after a stopped: %v, want it deleted", err)
	}
}

// Hooks left nil are not called: Periodically runs the work all the same.
func TestPeriodicallyWithoutHooks(t *testing.T) {
	t.Parallel()
	l := lease.New(bucket(t), key, "a", time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.Periodically(ctx, time.Hour, lease.Hooks{}, func(context.Context, <-chan struct{}) {
			select {
			case <-ran:
			default:
				close(ran)
			}
		})
	}()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the work did not run within 10s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Periodically: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Periodically did not return within 10s of its context ending")
	}
}
