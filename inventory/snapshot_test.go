package inventory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/inventory"
)

func TestARoundWritesASnapshotSoonestExpiringFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := inventory.ReadSnapshot(ctx, b.js); !errors.Is(err, inventory.ErrNoSnapshot) {
		t.Fatalf("ReadSnapshot before any round = %v, want ErrNoSnapshot", err)
	}
	b.sim.AddProject("Shop", "production", "staging")
	late := b.deploy(t, "Shop", "api-tls", "staging", b.now.Add(-1*day), b.now.Add(400*day))
	soon := b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-10*day), b.now.Add(5*day))
	gone := b.deploy(t, "Shop", "old-ca", "production", b.now.Add(-100*day), b.now.Add(-2*day))
	b.start(t, inventory.Config{Projects: []string{"Shop"}, Interval: 2 * time.Second})

	var snap inventory.Snapshot
	poll.Until(t, 10*time.Second, "the first round's snapshot", func() bool {
		var err error
		snap, err = inventory.ReadSnapshot(ctx, b.js)
		return err == nil
	})
	want := []inventory.Certificate{
		{ProjectName: "Shop", CertificateName: "old-ca", EnvironmentName: "production", SHA1Thumbprint: gone,
			SubjectDN: "CN=old-ca.production.example", NotBefore: b.now.Add(-100 * day), NotAfter: b.now.Add(-2 * day)},
		{ProjectName: "Shop", CertificateName: "api-tls", EnvironmentName: "production", SHA1Thumbprint: soon,
			SubjectDN: "CN=api-tls.production.example", NotBefore: b.now.Add(-10 * day), NotAfter: b.now.Add(5 * day)},
		{ProjectName: "Shop", CertificateName: "api-tls", EnvironmentName: "staging", SHA1Thumbprint: late,
			SubjectDN: "CN=api-tls.staging.example", NotBefore: b.now.Add(-1 * day), NotAfter: b.now.Add(400 * day)},
	}
	if diff := cmp.Diff(want, snap.Certificates); diff != "" {
		t.Errorf("snapshot certificates (-want +got):\n%s", diff)
	}
	if !snap.Complete || snap.Interval != 2*time.Second || snap.Omitted != 0 || snap.TakenAt.Before(b.now) {
		t.Errorf("snapshot complete=%v interval=%s omitted=%d takenAt=%s, want a complete round after %s every 2s", snap.Complete, snap.Interval, snap.Omitted, snap.TakenAt, b.now)
	}

	// A deleted certificate leaves the next round's snapshot.
	b.sim.RemoveCertificate("Shop", "old-ca")
	poll.Until(t, 10*time.Second, "a snapshot without the deleted certificate", func() bool {
		s, err := inventory.ReadSnapshot(ctx, b.js)
		return err == nil && len(s.Certificates) == 2 && s.Certificates[0].CertificateName == "api-tls"
	})
}

func TestDaysLeftRoundsUpAndIsZeroOrLessOnceExpired(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		notAfter time.Time
		want     int
	}{
		{now.Add(5 * day), 5},
		{now.Add(5*day - time.Hour), 5},
		{now.Add(time.Minute), 1},
		{now, 0},
		{now.Add(-day), -1},
	} {
		if got := inventory.DaysLeft(c.notAfter, now); got != c.want {
			t.Errorf("DaysLeft(now%+v) = %d, want %d", c.notAfter.Sub(now), got, c.want)
		}
	}
}
