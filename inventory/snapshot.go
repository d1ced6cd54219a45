package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/streams"
)

// SnapshotKey is the key, in the bucket streams.InventoryBucket, of the
// latest round's certificates: what `enqueue certificates expiring` lists,
// from NATS alone, with no Apinizer token.
const SnapshotKey = "certificates"

// snapshotMaxBytes bounds the snapshot's value below NATS's default maximum
// payload (1 MiB), with room for the message's headers. Beyond it the
// latest-expiring certificates are left out and counted.
const snapshotMaxBytes = 768 << 10

// ErrNoSnapshot reports that no inventory round has written a snapshot yet.
var ErrNoSnapshot = errors.New("inventory: no snapshot yet")

// Snapshot is the latest round's certificates, soonest-expiring first.
type Snapshot struct {
	// TakenAt is the round's time.
	TakenAt time.Time `json:"takenAt"`
	// Complete is false when a project could not be listed: its
	// certificates are those of an earlier round.
	Complete bool `json:"complete"`
	// Interval is the time between rounds, to tell a stale snapshot.
	Interval time.Duration `json:"intervalNanos"`
	// Certificates holds one row per certificate and environment.
	Certificates []Certificate `json:"certificates"`
	// Omitted counts the latest-expiring rows left out to bound the size.
	Omitted int `json:"omitted,omitempty"`
}

// Certificate is one certificate as one environment serves it.
type Certificate struct {
	ProjectName     string    `json:"projectName"`
	CertificateName string    `json:"certificateName"`
	EnvironmentName string    `json:"environmentName"`
	SHA1Thumbprint  string    `json:"sha1Thumbprint"`
	SubjectDN       string    `json:"subjectDn"`
	NotBefore       time.Time `json:"notBefore"`
	NotAfter        time.Time `json:"notAfter"`
}

// DaysLeft is the whole days from now until notAfter, rounded up: 0 or
// less once expired, 1 on the last day. Events and listings agree on it.
func DaysLeft(notAfter, now time.Time) int {
	return int(math.Ceil(notAfter.Sub(now).Hours() / 24))
}

// encodeSnapshot encodes the round's entries (sorted by notAfter), leaving
// out the latest-expiring ones while the value exceeds maxBytes.
func encodeSnapshot(entries []entry, now time.Time, complete bool, interval time.Duration, maxBytes int) ([]byte, error) {
	s := Snapshot{TakenAt: now.UTC(), Complete: complete, Interval: interval, Certificates: make([]Certificate, len(entries))}
	for i, e := range entries {
		s.Certificates[i] = Certificate{
			ProjectName: e.project, CertificateName: e.certificate, EnvironmentName: e.environment,
			SHA1Thumbprint: e.thumbprint, SubjectDN: e.subject, NotBefore: e.notBefore.UTC(), NotAfter: e.notAfter.UTC(),
		}
	}
	for {
		body, err := json.Marshal(s)
		if err != nil || len(body) <= maxBytes {
			return body, err
		}
		// Keep the share that fits, a little less for the count's digits;
		// at least one fewer each pass.
		n := len(s.Certificates)
		keep := min(n-1, int(float64(n)*float64(maxBytes)/float64(len(body))*0.98))
		s.Omitted += n - max(keep, 0)
		s.Certificates = s.Certificates[:max(keep, 0)]
	}
}

// writeSnapshot puts the round's snapshot in the inventory bucket.
func (inv *Inventory) writeSnapshot(ctx context.Context, entries []entry, now time.Time, complete bool) error {
	body, err := encodeSnapshot(entries, now, complete, inv.cfg.Interval, snapshotMaxBytes)
	if err != nil {
		return fmt.Errorf("inventory: encode snapshot: %w", err)
	}
	kv, err := inv.js.KeyValue(ctx, streams.InventoryBucket)
	if err != nil {
		return fmt.Errorf("inventory: bucket %s: %w", streams.InventoryBucket, err)
	}
	if _, err := kv.Put(ctx, SnapshotKey, body); err != nil {
		return fmt.Errorf("inventory: write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads the latest round's snapshot. It needs only read access
// to the bucket streams.InventoryBucket.
func ReadSnapshot(ctx context.Context, js jetstream.JetStream) (Snapshot, error) {
	kv, err := js.KeyValue(ctx, streams.InventoryBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return Snapshot{}, fmt.Errorf("%w: bucket %s does not exist (is a worker running with APINIZER_INVENTORY_PROJECTS set?)", ErrNoSnapshot, streams.InventoryBucket)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("inventory: bucket %s: %w", streams.InventoryBucket, err)
	}
	e, err := kv.Get(ctx, SnapshotKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Snapshot{}, fmt.Errorf("%w: the inventory has not finished a round", ErrNoSnapshot)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("inventory: read snapshot: %w", err)
	}
	var s Snapshot
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return Snapshot{}, fmt.Errorf("inventory: snapshot unreadable: %w", err)
	}
	return s, nil
}
