// Package stranded counts, periodically and on one replica at a time, the
// jobs the server gave up on that no worker finished: their deliveries ran
// out, they are still in the jobs stream, and the ledger holds no final
// result for them. Normally the server's max-deliveries advisory makes a
// worker finish such a job; a lost advisory (JetStream's storage full, the
// advisories stream missing) leaves it stranded, and only this count and
// its alert say so. `enqueue dlq stranded --redrive` finishes them.
package stranded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/lease"
	"github.com/apiops-worker/apiops-worker/streams"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("stranded: invalid config")

// leaseKey is the check's lease in the ledger bucket, apart from the
// ledger's own job. and res. keys.
const leaseKey = "lease.stranded-check"

// Config configures a Watch.
type Config struct {
	// Interval between checks (WORKER_STRANDED_CHECK_INTERVAL). Default 5m.
	// A check reads every delivered job still in the stream, so it is not
	// made often.
	Interval time.Duration
	// Lease bounds how long the replicas go without the check when the one
	// making it dies. Default 1m.
	Lease time.Duration
	// Holder names this replica in the lease. Default the host name with a
	// random suffix.
	Holder string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = 5 * time.Minute
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.Holder == "" {
		c.Holder = lease.DefaultHolder()
	}
	return c
}

// Validate reports the first setting out of range.
func (c Config) Validate() error {
	switch {
	case c.Interval < time.Second:
		return fmt.Errorf("%w: interval %s: want 1s or more", ErrInvalidConfig, c.Interval)
	case c.Lease < 100*time.Millisecond:
		return fmt.Errorf("%w: lease %s: want 100ms or more", ErrInvalidConfig, c.Lease)
	}
	return nil
}

// Gauge receives each check's count. *metrics.Metrics implements it.
type Gauge interface {
	StrandedJobs(n int)
}

// Watch makes the check while this replica holds its lease.
type Watch struct {
	cfg   Config
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	gauge Gauge
	log   *slog.Logger
}

// NewWatch returns a Watch reading the jobs stream through js and the ledger
// bucket kv, where its lease lives too.
func NewWatch(cfg Config, js jetstream.JetStream, kv jetstream.KeyValue, gauge Gauge, log *slog.Logger) (*Watch, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if js == nil || kv == nil || gauge == nil || log == nil {
		return nil, fmt.Errorf("%w: jetstream, bucket, gauge and logger are required", ErrInvalidConfig)
	}
	return &Watch{cfg: cfg, js: js, kv: kv, gauge: gauge, log: log}, nil
}

// Run checks every Interval while this replica holds the lease, until ctx
// ends; then it gives the lease up. A replica without the lease reports 0,
// so that the replicas' maximum is the holder's count.
func (w *Watch) Run(ctx context.Context) {
	l := lease.New(w.kv, leaseKey, w.cfg.Holder, w.cfg.Lease)
	err := l.Periodically(ctx, w.cfg.Interval, lease.Hooks{
		Changed: func(held bool) {
			if !held {
				w.gauge.StrandedJobs(0)
			}
		},
		Failed: func(err error) { w.log.Warn("stranded-jobs check lease", slog.Any("error", err)) },
	}, func(ctx context.Context, _ <-chan struct{}) {
		n, err := w.check(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			w.log.Warn("stranded-jobs check failed", slog.Any("error", err))
		case n > 0:
			w.gauge.StrandedJobs(n)
			w.log.Warn("jobs stranded: their deliveries ran out and no worker finished them; run enqueue dlq stranded --redrive", slog.Int("stranded", n))
		default:
			w.gauge.StrandedJobs(0)
		}
	})
	if err != nil {
		w.log.Warn("could not give the stranded-jobs check lease up", slog.Any("error", err))
	}
}

// check counts the stranded jobs: delivered jobs still in the stream, not
// final and not claimed, whose last claim was the consumer's last delivery.
// A job merely waiting for its next delivery has deliveries left, so it is
// not counted.
func (w *Watch) check(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Interval)
	defer cancel()
	cons, err := w.js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		return 0, fmt.Errorf("stranded: consumer: %w", err)
	}
	maxDeliver := cons.CachedInfo().Config.MaxDeliver
	if maxDeliver <= 0 {
		return 0, nil // every job is delivered until it is finished
	}
	found, _, err := dlq.FindStranded(ctx, w.js, w.kv)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, st := range found {
		if st.Deliveries >= uint64(maxDeliver) {
			n++
		}
	}
	return n, nil
}
