package inventory_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/inventory"
)

func TestExpiryEventsComeOncePerCertificateEnvironmentThumbprintAndDay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clk := &clock{t: b.now}
	b.sim.AddProject("Shop", "production", "staging")
	prodThumb := b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-day), b.now.Add(5*day))
	stagingThumb := b.deploy(t, "Shop", "api-tls", "staging", b.now.Add(-day), b.now.Add(5*day))
	expiredThumb := b.deploy(t, "Shop", "old-tls", "production", b.now.Add(-100*day), b.now.Add(-2*day))
	b.deploy(t, "Shop", "far-tls", "production", b.now.Add(-day), b.now.Add(400*day))
	r := b.start(t, inventory.Config{Projects: []string{"Shop"}, Interval: time.Second, Now: clk.Now})

	waitRounds := func(n int) {
		t.Helper()
		want := b.rounds("Shop") + n
		poll.Until(t, 20*time.Second, "more inventory rounds", func() bool { return b.rounds("Shop") >= want })
	}
	waitRounds(3)
	want := []inventory.Event{
		{ProjectName: "Shop", CertificateName: "old-tls", EnvironmentName: "production", SHA1Thumbprint: expiredThumb, NotAfter: b.now.Add(-2 * day), DaysLeft: -2},
		{ProjectName: "Shop", CertificateName: "api-tls", EnvironmentName: "production", SHA1Thumbprint: prodThumb, NotAfter: b.now.Add(5 * day), DaysLeft: 5},
		{ProjectName: "Shop", CertificateName: "api-tls", EnvironmentName: "staging", SHA1Thumbprint: stagingThumb, NotAfter: b.now.Add(5 * day), DaysLeft: 5},
	}
	t.Run("three rounds in a day give one event per expiring certificate and environment, the expired one with daysLeft <= 0", func(t *testing.T) {
		if diff := cmp.Diff(want, b.events(t)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("a rotated certificate that still expires soon gives a new event for its new thumbprint", func(t *testing.T) {
		rotated := b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-day), b.now.Add(6*day))
		waitRounds(2)
		want = append(want, inventory.Event{ProjectName: "Shop", CertificateName: "api-tls", EnvironmentName: "production", SHA1Thumbprint: rotated, NotAfter: b.now.Add(6 * day), DaysLeft: 6})
		if diff := cmp.Diff(want, b.events(t)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("the next day gives each one event again, a day closer", func(t *testing.T) {
		clk.Add(day)
		waitRounds(2)
		got := b.events(t)
		if len(got) != len(want)+3 {
			t.Fatalf("%d events, want %d: the day's three", len(got), len(want)+3)
		}
		days := map[string]int{}
		for _, e := range got[len(want):] {
			days[e.CertificateName+"/"+e.EnvironmentName] = e.DaysLeft
		}
		if diff := cmp.Diff(map[string]int{"old-tls/production": -3, "api-tls/production": 5, "api-tls/staging": 4}, days); diff != "" {
			t.Errorf("the next day's daysLeft (-want +got):\n%s", diff)
		}
	})
	if v, _ := r.value(t, `apiops_inventory_events_total{outcome="published"}`); v != 7 {
		t.Errorf("published events counted %v, want 7", v)
	}
}

func TestAnotherReplicaRepublishingWithinTheDayAddsNoEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddProject("Shop", "production")
	b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-day), b.now.Add(3*day))
	first := b.start(t, inventory.Config{Projects: []string{"Shop"}})
	poll.Until(t, 10*time.Second, "the first replica's event", func() bool { return len(b.events(t)) == 1 })
	first.stop(t)

	second := b.start(t, inventory.Config{Projects: []string{"Shop"}})
	poll.Until(t, 10*time.Second, "the second replica's round", func() bool {
		v, _ := second.value(t, `apiops_inventory_events_total{outcome="duplicate"}`)
		return v == 1
	})
	if n := len(b.events(t)); n != 1 {
		t.Errorf("%d events after a second replica's round on the same day, want 1 (Nats-Msg-Id dedup)", n)
	}
}
