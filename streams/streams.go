// Package streams declares the JetStream topology the service runs on: the
// jobs stream, its durable pull consumer, the results stream, the dead-letter
// stream and the ledger bucket; and it provisions or verifies them.
//
// Producers, the worker and the enqueue CLI all import these names, so the
// topology is written down once.
package streams

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/setting"
)

// Names of the JetStream objects. They are part of the operator-facing
// contract: renaming one strands the data in the old one.
const (
	Jobs        = "APIOPS_JOBS"
	Results     = "APIOPS_RESULTS"
	DeadLetters = "APIOPS_DLQ"
	Advisories  = "APIOPS_ADVISORIES"
	Consumer    = "apiops-worker"
	// AdvisoryConsumer is shared by the workers: each advisory about a job
	// the server gave up on is handled by one of them.
	AdvisoryConsumer = "apiops-worker-advisories"
	LedgerBucket     = "apiops_ledger"
)

// Subject filters of the streams.
var (
	JobSubjects        = []string{"apiops.certificate.>", "apiops.key.>", "apiops.credential.>", "apiops.jwk.>"}
	ResultSubjects     = []string{"apiops.results.>"}
	DeadLetterSubjects = []string{"apiops.dlq.>"}
	// AdvisorySubjects are the server's advisories about jobs-consumer
	// messages that reached max deliveries or were terminated: without them
	// a job whose every delivery crashed its worker would sit in the work
	// queue, never delivered again, never reported.
	AdvisorySubjects = []string{
		"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + Jobs + "." + Consumer,
		"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + Jobs + "." + Consumer,
	}
)

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("streams: invalid config")

// ErrMissing is wrapped by Verify when an object does not exist.
var ErrMissing = errors.New("streams: missing")

// Config holds the settings of the topology. The zero value of every field
// means its default.
type Config struct {
	// Replicas of every stream, consumer and bucket. Default 1; use 3 on a
	// three-node cluster so that an acknowledged job survives a node's loss.
	Replicas int
	// Storage of every stream. Default file storage: jobs must survive a
	// server restart.
	Storage jetstream.StorageType
	// DuplicateWindow is how long the jobs and results streams remember a
	// Nats-Msg-Id. Default 10m. A job republished with the same id within the
	// window is dropped by the server; after it, the worker's ledger still
	// recognises the job id for LedgerTTL.
	DuplicateWindow time.Duration
	// ResultsMaxAge is how long results are kept. Default 7 days.
	ResultsMaxAge time.Duration
	// DeadLetterMaxAge is how long dead letters are kept. Default 30 days.
	DeadLetterMaxAge time.Duration
	// AckWait is how long a delivered job may go without an ack or progress
	// report before the server redelivers it. Default 30s.
	AckWait time.Duration
	// MaxDeliver is the server's backstop on deliveries of one job (it also
	// ends a job that crashes every worker it reaches). Default 20.
	MaxDeliver int
	// MaxAckPending bounds the jobs delivered and not yet acknowledged,
	// across all replicas; each replica holds up to WORKER_MAX_JOBS
	// (its concurrency plus up to 256 more), and no more than this.
	// Default 1024.
	MaxAckPending int
	// LedgerTTL is how long a job's ledger record is kept after its last
	// change. Default 7 days.
	LedgerTTL time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Replicas = cmp.Or(c.Replicas, 1)
	c.DuplicateWindow = cmp.Or(c.DuplicateWindow, 10*time.Minute)
	c.ResultsMaxAge = cmp.Or(c.ResultsMaxAge, 7*24*time.Hour)
	c.DeadLetterMaxAge = cmp.Or(c.DeadLetterMaxAge, 30*24*time.Hour)
	c.AckWait = cmp.Or(c.AckWait, 30*time.Second)
	c.MaxDeliver = cmp.Or(c.MaxDeliver, 20)
	c.MaxAckPending = cmp.Or(c.MaxAckPending, 1024)
	c.LedgerTTL = cmp.Or(c.LedgerTTL, 7*24*time.Hour)
	return c
}

// Validate reports every setting out of range, each a *setting.Error
// naming its field. It checks the values as they are: call it after
// WithDefaults.
func (c Config) Validate() error {
	v := setting.New(ErrInvalidConfig)
	v.Want(c.Replicas >= 1 && c.Replicas <= 5, "Replicas", c.Replicas, "1 to 5")
	v.Want(c.DuplicateWindow >= time.Second && c.DuplicateWindow <= c.LedgerTTL, "DuplicateWindow", c.DuplicateWindow,
		fmt.Sprintf("1s to the ledger TTL %s", c.LedgerTTL))
	v.Want(c.AckWait >= time.Second, "AckWait", c.AckWait, "at least 1s")
	v.Want(c.MaxDeliver >= 2, "MaxDeliver", c.MaxDeliver, "at least 2")
	v.Want(c.MaxAckPending >= 1, "MaxAckPending", c.MaxAckPending, "at least 1")
	return v.Err()
}

// JobsStream is a work queue: a job is removed once acknowledged, and kept
// (unbounded by age) until then, so nothing waiting out an outage expires.
// Producers are told when the stream is full instead of older jobs being
// silently discarded.
func (c Config) JobsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Jobs,
		Description: "apiops jobs, removed once a worker acknowledges them",
		Subjects:    JobSubjects,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
	}
}

// ResultsStream keeps results for ResultsMaxAge, deduplicating republished
// results by their Nats-Msg-Id.
func (c Config) ResultsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Results,
		Description: "apiops deployment results, one per job",
		Subjects:    ResultSubjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		MaxAge:      c.ResultsMaxAge,
		Duplicates:  c.DuplicateWindow,
		// Producers may create consumers here to watch their results; a
		// permission cannot tell a durable from an ephemeral, so the stream
		// bounds how many there are and drops those left unused (5m is
		// nats.go's own default for ordered consumers).
		MaxConsumers:   256,
		ConsumerLimits: jetstream.StreamConsumerLimits{InactiveThreshold: 5 * time.Minute},
	}
}

// DeadLetterStream keeps jobs the worker gave up on, for inspection and
// replay.
func (c Config) DeadLetterStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DeadLetters,
		Description: "apiops jobs that could not be applied",
		Subjects:    DeadLetterSubjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		MaxAge:      c.DeadLetterMaxAge,
		Duplicates:  c.DuplicateWindow,
	}
}

// AdvisoryStream captures the advisories about the jobs consumer until a
// worker has handled them.
func (c Config) AdvisoryStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Advisories,
		Description: "server advisories about apiops jobs given up on",
		Subjects:    AdvisorySubjects,
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		MaxAge:      c.DeadLetterMaxAge,
	}
}

// AdvisoryConsumerConfig is the durable pull consumer of the advisories.
func (c Config) AdvisoryConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:   AdvisoryConsumer,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   c.AckWait,
		Replicas:  c.Replicas,
	}
}

// ConsumerConfig is the durable pull consumer every worker replica shares.
func (c Config) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       Consumer,
		Description:   "apiops workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		Replicas:      c.Replicas,
	}
}

// LedgerConfig is the key-value bucket holding one record per job and per
// resource.
func (c Config) LedgerConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      LedgerBucket,
		Description: "apiops job claims, results and per-resource order",
		History:     1,
		TTL:         c.LedgerTTL,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
	}
}

// WatchResults returns a consumer of the results published from now on.
// It reads the stream's last sequence first and starts after it: an ordered
// consumer is only created on the server at its first fetch, so
// DeliverNewPolicy would miss results published in between.
func WatchResults(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	s, err := js.Stream(ctx, Results)
	if err != nil {
		return nil, fmt.Errorf("streams: results: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("streams: results: %w", err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   info.State.LastSeq + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("streams: results: %w", err)
	}
	return cons, nil
}

// Provision creates or updates every stream, the consumer and the ledger
// bucket.
func Provision(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, sc := range []jetstream.StreamConfig{cfg.JobsStream(), cfg.ResultsStream(), cfg.DeadLetterStream(), cfg.AdvisoryStream()} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("streams: provision stream %s: %w", sc.Name, err)
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, Jobs, cfg.ConsumerConfig()); err != nil {
		return fmt.Errorf("streams: provision consumer %s: %w", Consumer, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, Advisories, cfg.AdvisoryConsumerConfig()); err != nil {
		return fmt.Errorf("streams: provision consumer %s: %w", AdvisoryConsumer, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, cfg.LedgerConfig()); err != nil {
		return fmt.Errorf("streams: provision bucket %s: %w", LedgerBucket, err)
	}
	return nil
}

// Verify checks that every object Provision would create exists, and names
// all the missing ones in one error wrapping ErrMissing.
func Verify(ctx context.Context, js jetstream.JetStream) error {
	var missing []string
	for _, name := range []string{Jobs, Results, DeadLetters, Advisories} {
		if _, err := js.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
			missing = append(missing, "stream "+name)
		} else if err != nil {
			return fmt.Errorf("streams: verify stream %s: %w", name, err)
		}
	}
	for _, c := range [][2]string{{Jobs, Consumer}, {Advisories, AdvisoryConsumer}} {
		if _, err := js.Consumer(ctx, c[0], c[1]); errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			missing = append(missing, "consumer "+c[0]+"/"+c[1])
		} else if err != nil {
			return fmt.Errorf("streams: verify consumer %s: %w", c[1], err)
		}
	}
	if _, err := js.KeyValue(ctx, LedgerBucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		missing = append(missing, "key-value bucket "+LedgerBucket)
	} else if err != nil {
		return fmt.Errorf("streams: verify bucket %s: %w", LedgerBucket, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (provision them, see deploy/nats, or start one worker without --no-provision)", ErrMissing, strings.Join(missing, ", "))
	}
	return nil
}
