package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/lease"
	"github.com/apiops-worker/apiops-worker/streams"
)

// leaseKey is the lease's key in the inventory bucket.
const leaseKey = "lease"

// Source is what the inventory reads from Apinizer.
type Source interface {
	Projects(ctx context.Context) ([]string, error)
	Certificates(ctx context.Context, project string) ([]executor.ListedCertificate, error)
}

var _ Source = (*executor.Client)(nil)

// Inventory runs the certificate inventory. Create it with New and start
// it with Run.
type Inventory struct {
	cfg     Config
	src     Source
	js      jetstream.JetStream
	logger  *slog.Logger
	limiter *rate.Limiter
	col     *collector
	ctr     *counters
	pub     *publisher
	lease   atomic.Pointer[lease.Lease] // set by Run
}

// New returns an inventory for cfg, after applying defaults and validating
// it, and registers its metrics on reg. It reads Apinizer through src and
// uses the bucket streams.InventoryBucket and the stream streams.Events,
// which streams.ProvisionInventory creates.
func New(cfg Config, src Source, js jetstream.JetStream, reg prometheus.Registerer, logger *slog.Logger) (*Inventory, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	inv := &Inventory{
		cfg: cfg, src: src, js: js, logger: logger.With(slog.String("component", "inventory")),
		// A burst of 1: the calls are spread evenly, never bunched.
		limiter: rate.NewLimiter(cfg.RequestRate, 1),
		pub:     &publisher{js: js},
	}
	inv.col = newCollector(inv.held)
	ctr, err := newCounters(reg, cfg.Interval)
	if err != nil {
		return nil, err
	}
	inv.ctr = ctr
	if err := reg.Register(inv.col); err != nil {
		return nil, fmt.Errorf("inventory: register metrics: %w", err)
	}
	return inv, nil
}

// held reports whether this replica holds the lease now.
func (inv *Inventory) held() bool {
	l := inv.lease.Load()
	if l == nil {
		return false
	}
	ok, _ := l.Held()
	return ok
}

// Run holds or waits for the lease and, while this replica holds it, runs
// a round every Interval, the first as soon as it takes the lease. It
// returns nil when ctx ends, after giving the lease up, and an error only
// when the bucket or the events stream is missing.
func (inv *Inventory) Run(ctx context.Context) error {
	kv, err := inv.js.KeyValue(ctx, streams.InventoryBucket)
	if err != nil {
		return fmt.Errorf("inventory: bucket %s: %w", streams.InventoryBucket, err)
	}
	if _, err := inv.js.Stream(ctx, streams.Events); err != nil {
		return fmt.Errorf("inventory: stream %s: %w", streams.Events, err)
	}
	l := lease.New(kv, leaseKey, inv.cfg.Holder, inv.cfg.Lease)
	inv.lease.Store(l)
	err = l.Periodically(ctx, inv.cfg.Interval, lease.Hooks{Changed: inv.leaseChanged, Failed: func(err error) {
		inv.ctr.errors.WithLabelValues(reasonLease).Inc()
		inv.logger.Warn("inventory lease", slog.Any("error", err))
	}}, func(ctx context.Context, term <-chan struct{}) { inv.round(ctx, l, term) })
	if err != nil {
		inv.logger.Warn("could not give the inventory lease up; another replica takes over when it expires", slog.Any("error", err))
	}
	inv.col.set(snapshot{})
	inv.ctr.held.Set(0)
	return nil
}

// leaseChanged exports while this replica holds the lease, and drops the
// snapshot when it loses it.
func (inv *Inventory) leaseChanged(held bool) {
	if !held {
		inv.ctr.held.Set(0)
		inv.col.set(snapshot{})
		inv.logger.Warn("lost the inventory lease; exporting and publishing nothing", slog.String("holder", inv.cfg.Holder))
		return
	}
	inv.ctr.held.Set(1)
	inv.logger.Info("took the inventory lease", slog.String("holder", inv.cfg.Holder))
}
