package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
)

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("worker: invalid config")

// Config configures a Worker. The zero value of a field means its default.
type Config struct {
	// Concurrency is the number of Apinizer calls made at once. Default 16.
	Concurrency int
	// MaxJobs is the number of jobs held at once, at least Concurrency. Jobs
	// beyond Concurrency are claimed, locked and recorded while others'
	// calls run, so that the ledger and NATS round trips do not leave
	// Apinizer idle. The consumer's MaxAckPending should allow every
	// replica's MaxJobs. Default twice Concurrency.
	MaxJobs int
	// AckWait must equal the consumer's ack wait: progress is reported every
	// third of it while a job runs. Default 30s.
	AckWait time.Duration
	// MaxDeliver must equal the consumer's max deliveries: on the last
	// delivery a retryable failure gives up instead of retrying. Default 20.
	MaxDeliver int
	// JobTimeout bounds the Apinizer call of one delivery, in-process
	// retries included; waiting out an outage or a busy resource is not
	// counted. Default 5m.
	JobTimeout time.Duration
	// ShutdownGrace is how long in-flight jobs may run on after Run's context
	// ends; then they are cancelled and handed back for redelivery.
	// Default 30s.
	ShutdownGrace time.Duration
	// FetchWait is how long one pull waits for jobs. Default 5s.
	FetchWait time.Duration
	// BreakerThreshold is the number of outage failures in a row (no
	// answer, or a 5xx) across jobs that opens the circuit breaker. Default 5.
	BreakerThreshold int
	// ProbeInterval is the first wait between probes of an unreachable
	// Apinizer; it doubles up to 5s. Default 1s.
	ProbeInterval time.Duration
	// BacklogInterval is how often consumer info is read for the backlog
	// metrics. Default 15s.
	BacklogInterval time.Duration
	// RedeliveryDelay is the delay before retrying a job whose delivery
	// failed, given the delivery count. Default: 2s doubling to 2m, with
	// jitter.
	RedeliveryDelay func(delivered uint64) time.Duration
	// Ledger records claims and results. Nil turns bookkeeping off: jobs are
	// then applied at least once, not at most once (benchmarks only).
	Ledger *ledger.Ledger
	// Logger receives the worker's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the worker's measurements. Required.
	Metrics *metrics.Metrics
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = 2 * c.Concurrency
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 20
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = 5 * time.Minute
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.FetchWait == 0 {
		c.FetchWait = 5 * time.Second
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 5
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = time.Second
	}
	if c.BacklogInterval == 0 {
		c.BacklogInterval = 15 * time.Second
	}
	if c.RedeliveryDelay == nil {
		c.RedeliveryDelay = ExponentialDelay(2*time.Second, 2*time.Minute)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Concurrency < 1 || c.Concurrency > 4096:
		return fmt.Errorf("%w: concurrency %d: want 1 to 4096", ErrInvalidConfig, c.Concurrency)
	case c.MaxJobs < c.Concurrency || c.MaxJobs > 8192:
		return fmt.Errorf("%w: max jobs %d: want %d (the concurrency) to 8192", ErrInvalidConfig, c.MaxJobs, c.Concurrency)
	case c.AckWait < time.Second:
		return fmt.Errorf("%w: ack wait %s: want at least 1s", ErrInvalidConfig, c.AckWait)
	case c.MaxDeliver < 2:
		return fmt.Errorf("%w: max deliver %d: want at least 2", ErrInvalidConfig, c.MaxDeliver)
	case c.BreakerThreshold < 1:
		return fmt.Errorf("%w: breaker threshold %d: want at least 1", ErrInvalidConfig, c.BreakerThreshold)
	case c.JobTimeout <= 0 || c.ShutdownGrace <= 0 || c.FetchWait <= 0 || c.BacklogInterval <= 0 || c.ProbeInterval <= 0:
		return fmt.Errorf("%w: timeouts must be positive", ErrInvalidConfig)
	case c.Metrics == nil:
		return fmt.Errorf("%w: metrics are required", ErrInvalidConfig)
	}
	return nil
}

// ExponentialDelay returns a redelivery delay that starts at initial, doubles
// with each delivery up to max, and is jittered by ±25% so that jobs failed
// together are not retried together.
func ExponentialDelay(initial, max time.Duration) func(delivered uint64) time.Duration {
	return func(delivered uint64) time.Duration {
		d := initial
		for i := uint64(1); i < delivered && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d - d/4 + rand.N(d/2+1)
	}
}
