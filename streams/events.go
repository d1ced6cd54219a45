package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The events stream and the certificate inventory's bucket. They are
// provisioned apart from the job topology (ProvisionInventory), only by
// workers that run the inventory.
const (
	Events = "APIOPS_EVENTS"
	// InventoryBucket holds the inventory's lease: one key, written by the
	// replica that runs the inventory.
	InventoryBucket = "apiops_inventory"
	// SubjectCertificateExpiring carries one event per certificate,
	// environment and thumbprint per day while the certificate is about to
	// expire (docs/metrics.md, CONTRACT.md "Events").
	SubjectCertificateExpiring = "apiops.events.certificate.expiring"
)

// EventSubjects is the events stream's subject filter.
var EventSubjects = []string{"apiops.events.>"}

const (
	// EventDuplicateWindow is how long the events stream remembers a
	// Nats-Msg-Id. An expiry event's id names its day, so a window of a day
	// makes every repeat within that day a duplicate.
	EventDuplicateWindow = 24 * time.Hour
	// EventsMaxAge is how long events are kept, for subscribers that were
	// away and for listing what expires.
	EventsMaxAge = 7 * 24 * time.Hour
)

// EventsStream keeps events for EventsMaxAge and drops a repeat of an event
// id within EventDuplicateWindow.
func (c Config) EventsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Events,
		Description: "apiops events: certificates about to expire",
		Subjects:    EventSubjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		MaxAge:      EventsMaxAge,
		Duplicates:  EventDuplicateWindow,
	}
}

// InventoryBucketConfig is the bucket of the inventory's lease: one value,
// no history.
func (c Config) InventoryBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      InventoryBucket,
		Description: "apiops certificate inventory lease",
		History:     1,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
	}
}

// ProvisionInventory creates or updates the events stream and the
// inventory bucket. cfg is the topology's Config, defaults applied.
func ProvisionInventory(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg = cfg.WithDefaults()
	if _, err := js.CreateOrUpdateStream(ctx, cfg.EventsStream()); err != nil {
		return fmt.Errorf("streams: provision stream %s: %w", Events, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, cfg.InventoryBucketConfig()); err != nil {
		return fmt.Errorf("streams: provision bucket %s: %w", InventoryBucket, err)
	}
	return nil
}
