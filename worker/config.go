package worker

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/setting"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
)

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("worker: invalid config")

// Config configures a Worker. The zero value of a field means its default.
// The consumer's ack wait and max deliveries are not set here: the worker
// reads them from the consumer, as the server redelivers by them.
type Config struct {
	// Concurrency is the number of Apinizer calls made at once, 1 to 4096.
	// Default 16.
	Concurrency int
	// MaxJobs is the number of jobs held at once, from Concurrency to 8192.
	// Jobs beyond Concurrency are claimed, locked and recorded while others'
	// calls run, so that the ledger and NATS round trips do not leave
	// Apinizer idle. The consumer's MaxAckPending should allow every
	// replica's MaxJobs; a replica never holds more than it (Run). Default
	// (or 0) Concurrency plus as many again, at most 256 more.
	MaxJobs int
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
	// Topology, if set, is provisioned again at once when a stream,
	// consumer or bucket the worker uses is found missing (deleted while it
	// runs). Nil: a missing object is only reported (/readyz and
	// apiops_jetstream_unavailable), as with provisioning turned off.
	Topology *streams.Config
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
	c.Concurrency = cmp.Or(c.Concurrency, 16)
	c.MaxJobs = cmp.Or(c.MaxJobs, defaultMaxJobs(c.Concurrency))
	c.JobTimeout = cmp.Or(c.JobTimeout, 5*time.Minute)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, 30*time.Second)
	c.FetchWait = cmp.Or(c.FetchWait, 5*time.Second)
	c.BreakerThreshold = cmp.Or(c.BreakerThreshold, 5)
	c.ProbeInterval = cmp.Or(c.ProbeInterval, time.Second)
	c.BacklogInterval = cmp.Or(c.BacklogInterval, 15*time.Second)
	if c.RedeliveryDelay == nil {
		c.RedeliveryDelay = ExponentialDelay(2*time.Second, 2*time.Minute)
	}
	if c.Topology != nil {
		t := c.Topology.WithDefaults()
		c.Topology = &t
	}
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every setting out of range, each a *setting.Error
// naming its field. It checks the values as they are: call it after
// WithDefaults, except that MaxJobs may be left 0.
func (c Config) Validate() error {
	v := setting.New(ErrInvalidConfig)
	v.Want(c.Concurrency >= 1 && c.Concurrency <= 4096, "Concurrency", c.Concurrency, "1 to 4096")
	v.Want(c.MaxJobs == 0 || c.MaxJobs >= c.Concurrency && c.MaxJobs <= 8192, "MaxJobs", c.MaxJobs,
		fmt.Sprintf("0 (the default, %d) or %d (the concurrency) to 8192", defaultMaxJobs(c.Concurrency), c.Concurrency))
	v.Want(c.JobTimeout > 0, "JobTimeout", c.JobTimeout, "positive")
	v.Want(c.ShutdownGrace > 0, "ShutdownGrace", c.ShutdownGrace, "positive")
	v.Want(c.FetchWait > 0, "FetchWait", c.FetchWait, "positive")
	v.Want(c.BreakerThreshold >= 1, "BreakerThreshold", c.BreakerThreshold, "at least 1")
	v.Want(c.ProbeInterval > 0, "ProbeInterval", c.ProbeInterval, "positive")
	v.Want(c.BacklogInterval > 0, "BacklogInterval", c.BacklogInterval, "positive")
	return v.Err()
}

// defaultMaxJobs is MaxJobs's default for a concurrency: twice the
// concurrency up to 256 calls, then the concurrency plus 256. A few hundred
// jobs ahead of the calls are enough to keep the ledger and NATS round trips
// off the calls' path (at 256 calls of 100 ms they took throughput from 81%
// to over 90% of the ideal); each job held costs a handler goroutine and its
// buffers, which at 1,024 calls took the peak RSS past 100 MiB.
func defaultMaxJobs(concurrency int) int {
	return concurrency + min(concurrency, 256)
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
