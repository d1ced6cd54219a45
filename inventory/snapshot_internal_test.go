package inventory

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestASnapshotTooLargeKeepsTheSoonestExpiringAndCountsTheRest(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var entries []entry
	for i := range 2000 {
		entries = append(entries, entry{
			project: "Shop", certificate: fmt.Sprintf("cert-%04d", i), environment: "production",
			thumbprint: "0123456789abcdef0123456789abcdef01234567", subject: "CN=a rather long subject name, O=Example",
			notBefore: now, notAfter: now.Add(time.Duration(i) * time.Hour),
		})
	}
	const maxBytes = 64 << 10
	body, err := encodeSnapshot(entries, now, true, time.Minute, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > maxBytes {
		t.Errorf("snapshot of %d bytes, want at most %d", len(body), maxBytes)
	}
	var s Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Certificates) == 0 || len(s.Certificates)+s.Omitted != len(entries) {
		t.Fatalf("%d certificates and %d omitted, want some kept and %d in all", len(s.Certificates), s.Omitted, len(entries))
	}
	if last := s.Certificates[len(s.Certificates)-1].CertificateName; last != fmt.Sprintf("cert-%04d", len(s.Certificates)-1) {
		t.Errorf("last kept %s, want the soonest-expiring kept in order", last)
	}
	// Left out only what did not fit: most of the budget is used.
	if len(body) < maxBytes*9/10 {
		t.Errorf("snapshot of %d bytes, want close to %d", len(body), maxBytes)
	}
}
