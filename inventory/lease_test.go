package inventory_test

import (
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/inventory"
)

// exporting reports whether r exports certificate series and says it holds
// the lease.
func exporting(t *testing.T, r *replica) bool {
	t.Helper()
	held, _ := r.value(t, "apiops_inventory_lease_held{}")
	return held == 1 && len(r.certificateSeries(t, "apiops_certificate_not_after_timestamp_seconds")) > 0
}

// silent reports whether r exports nothing of the inventory's snapshot.
func silent(t *testing.T, r *replica) bool {
	t.Helper()
	_, success := r.value(t, lastSuccess)
	held, _ := r.value(t, "apiops_inventory_lease_held{}")
	return held == 0 && !success && len(r.certificateSeries(t, "apiops_certificate_not_after_timestamp_seconds")) == 0
}

func TestOnlyTheLeaseHolderExportsAndPublishes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddProject("Shop", "production")
	b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-day), b.now.Add(3*day))
	cfg := inventory.Config{Projects: []string{"Shop"}, Interval: time.Second, Lease: time.Second}
	a, c := b.start(t, cfg), b.start(t, cfg)
	poll.Until(t, 10*time.Second, "one replica to export", func() bool { return exporting(t, a) || exporting(t, c) })

	holder, other := a, c
	if exporting(t, c) {
		holder, other = c, a
	}
	until := b.rounds("Shop") + 3
	for b.rounds("Shop") < until {
		if !exporting(t, holder) || !silent(t, other) {
			t.Fatalf("holder exporting %v, other silent %v: want exactly one replica to export", exporting(t, holder), silent(t, other))
		}
		next := b.rounds("Shop") + 1
		poll.Until(t, 10*time.Second, "the next round", func() bool { return b.rounds("Shop") >= next })
	}
	if n := len(b.events(t)); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

func TestAnotherReplicaTakesOverWithinOneLease(t *testing.T) {
	t.Parallel()
	const lease = 4 * time.Second
	tests := []struct {
		name string
		end  func(t *testing.T, r *replica)
	}{
		{"when the holder stops, it gives the lease up", func(t *testing.T, r *replica) { r.stop(t) }},
		{"when the holder dies without a word, its lease lapses", func(_ *testing.T, r *replica) { r.close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.sim.AddProject("Shop", "production")
			b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-day), b.now.Add(3*day))
			cfg := inventory.Config{Projects: []string{"Shop"}, Lease: lease}
			first := b.start(t, cfg)
			poll.Until(t, 10*time.Second, "the first replica to export", func() bool { return exporting(t, first) })
			second := b.start(t, cfg)

			ended := time.Now()
			tt.end(t, first)
			poll.Until(t, 2*lease, "the second replica to export", func() bool { return exporting(t, second) })
			took := time.Since(ended)
			t.Logf("the second replica exported %s after the first ended (lease %s)", took, lease)
			if took > lease {
				t.Errorf("took over after %s, want within the lease (%s)", took, lease)
			}
			if !silent(t, first) {
				t.Error("the first replica still exports after losing the lease")
			}
			// A replica exports before it publishes the round's events, and
			// the first may have died between the two: wait for the event,
			// then check that the handover did not send it twice.
			poll.Until(t, 2*lease, "the expiry event", func() bool { return len(b.events(t)) > 0 })
			if n := len(b.events(t)); n != 1 {
				t.Errorf("%d events across the handover, want 1", n)
			}
		})
	}
}
