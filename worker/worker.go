// Package worker consumes apiops jobs from the JetStream consumer with a
// bounded pool, applies each through an Executor at most once (with the
// ledger), publishes exactly one result per job, and only then acknowledges
// the message.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// Executor applies a job to Apinizer and tells whether Apinizer answers.
// *executor.Client implements it.
type Executor interface {
	Execute(ctx context.Context, job jobs.Job, call executor.Call) (executor.Response, error)
	// Probe checks whether Apinizer answers.
	Probe(ctx context.Context) error
}

var _ Executor = (*executor.Client)(nil)

// Worker runs the consume loop. Create it with New and start it with Run.
type Worker struct {
	cfg      Config
	js       jetstream.JetStream
	cons     jetstream.Consumer
	stream   string
	consumer string
	// ackWait, maxDeliver and maxAckPending are the consumer's: progress is
	// reported every third of the ack wait, on the last delivery a
	// retryable failure gives up instead of retrying, and no more jobs than
	// the max ack pending are ever delivered at once.
	ackWait       time.Duration
	maxDeliver    int
	maxAckPending int
	exec          Executor
	breaker       *breaker
	store         *storeOutage
	// calls holds a token per Apinizer call in flight.
	calls chan struct{}
	log   *slog.Logger
	bound atomic.Bool
	// inFlight counts the jobs being handled, for the shutdown's first line.
	inFlight atomic.Int64
}

// New returns a Worker consuming cons, publishing results through js and
// applying jobs with exec.
func New(cfg Config, js jetstream.JetStream, cons jetstream.Consumer, exec Executor) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		return nil, fmt.Errorf("%w: metrics are required", ErrInvalidConfig)
	}
	if js == nil || cons == nil || exec == nil {
		return nil, fmt.Errorf("%w: jetstream, consumer and executor are required", ErrInvalidConfig)
	}
	w := &Worker{
		cfg: cfg, js: js, cons: cons, exec: exec, log: cfg.Logger,
		breaker: newBreaker(cfg.BreakerThreshold, cfg.Logger, cfg.Metrics),
		store:   newStoreOutage(cfg.Logger, cfg.Metrics),
		calls:   make(chan struct{}, cfg.Concurrency),
	}
	if err := w.adopt(cons.CachedInfo()); err != nil {
		return nil, err
	}
	return w, nil
}

// adopt takes the consumer's names, ack wait and max deliveries.
func (w *Worker) adopt(info *jetstream.ConsumerInfo) error {
	if info == nil {
		return fmt.Errorf("%w: the consumer has no info", ErrInvalidConfig)
	}
	if info.Config.AckWait < time.Second {
		return fmt.Errorf("%w: consumer %s: ack wait %s: must be at least 1s", ErrInvalidConfig, info.Name, info.Config.AckWait)
	}
	w.stream, w.consumer = info.Stream, info.Name
	w.ackWait, w.maxDeliver, w.maxAckPending = info.Config.AckWait, info.Config.MaxDeliver, info.Config.MaxAckPending
	return nil
}

// Ready reports whether the worker can take jobs, and if not, why: it must
// be pulling from its consumer, its circuit breaker must not be open
// (Apinizer answers and accepts the worker's credentials), and JetStream
// must store its bookkeeping (ledger, results, dead letters). /readyz
// combines it with the NATS connection's state.
func (w *Worker) Ready() error {
	if !w.bound.Load() {
		return errors.New("not bound to the jobs consumer")
	}
	if s, _ := w.breaker.current(); s == open {
		return fmt.Errorf("circuit breaker open: %s", w.breaker.openCause())
	}
	return w.storeUnavailable()
}

// Run pulls and handles jobs until ctx ends, then stops pulling, lets the
// jobs in flight finish within the shutdown grace (cancelling the rest, which
// are handed back for redelivery) and returns. It returns nil after a clean
// shutdown.
func (w *Worker) Run(ctx context.Context) error {
	// The consumer may have changed since New: another replica provisions
	// it too.
	info, err := w.cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("worker: bind consumer: %w", err)
	}
	if err := w.adopt(info); err != nil {
		return err
	}
	w.bound.Store(true)
	defer w.bound.Store(false)

	// Jobs outlive ctx by the shutdown grace, so they get a context of their
	// own, cancelled only when the grace runs out.
	jobsCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()

	var wg sync.WaitGroup
	wg.Go(func() { w.sampleBacklog(ctx) })
	wg.Go(func() { w.superviseBreaker(ctx) })
	wg.Go(func() { w.handleAdvisories(ctx) })
	wg.Go(func() { w.pull(ctx, jobsCtx, &wg) })

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// Said at once: the last pull may take FetchWait to expire, and a
	// silent wait after Ctrl-C reads as a hang.
	n := w.inFlight.Load()
	w.log.Info(fmt.Sprintf("stopping: finishing %d jobs in flight, grace %s", n, w.cfg.ShutdownGrace),
		"in_flight", n, "grace", w.cfg.ShutdownGrace)
	// The grace starts when the worker is told to stop, not once its last
	// pull has expired.
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		w.log.Warn("shutdown grace over, cancelling jobs in flight", "grace", w.cfg.ShutdownGrace)
		cancelJobs()
		<-done // every job settles with a context bounded by settleTimeout
	}
	return nil
}

// pull fetches only as many messages as there are free slots (MaxJobs): a
// message waiting in a client buffer would already be ageing toward its ack
// wait.
func (w *Worker) pull(ctx, jobsCtx context.Context, wg *sync.WaitGroup) {
	maxJobs := w.cfg.MaxJobs
	// The server delivers no more than the max ack pending at once (-1 is
	// no limit): handlers beyond it would only idle, each keeping the stack
	// it grew on an earlier job.
	if w.maxAckPending > 0 && w.maxAckPending < maxJobs {
		maxJobs = w.maxAckPending
		w.log.Info(fmt.Sprintf("holding at most %d jobs, the consumer's max ack pending, not %d", maxJobs, w.cfg.MaxJobs),
			"max_jobs", w.cfg.MaxJobs, "max_ack_pending", w.maxAckPending)
	}
	slots := make(chan struct{}, maxJobs)
	// A fixed pool of handlers: a goroutine per job would grow a fresh stack
	// for every job. A message is only fetched for a free slot, so a
	// handler is always there to take it.
	msgs := make(chan jetstream.Msg)
	defer close(msgs)
	for range maxJobs {
		wg.Go(func() {
			for msg := range msgs {
				w.handle(jobsCtx, msg)
				<-slots
			}
		})
	}
	for {
		// While Apinizer is down, or JetStream cannot store the jobs'
		// bookkeeping, no new job is taken: it would only wait. The select
		// below may pick a free slot over a done ctx, so ctx is checked
		// first: a stopping worker starts no new pull.
		if err := w.waitUsable(ctx); err != nil || ctx.Err() != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < maxJobs {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		// The pull is not cut short by ctx: a message the server sends to an
		// abandoned pull would sit out a whole ack wait before redelivery.
		// Shutdown waits for the pull to expire instead (FetchWait), unless
		// the shutdown grace runs out first (jobsCtx).
		fetchCtx, cancel := context.WithTimeout(jobsCtx, w.cfg.FetchWait)
		batch, err := w.cons.Fetch(n, jetstream.FetchContext(fetchCtx))
		if err == nil {
			for msg := range batch.Messages() {
				n--
				msgs <- msg
			}
			err = batch.Error()
		}
		cancel()
		for range n {
			<-slots
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			w.log.Warn("fetch failed", "err", err)
			w.reprovision(ctx, streams.Jobs, err)
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// waitUsable returns once the breaker is not open and JetStream stores
// again. A half-open breaker takes jobs: one of them makes its trial call,
// and the others wait for its outcome, kept alive (call).
func (w *Worker) waitUsable(ctx context.Context) error {
	for {
		s, changed := w.breaker.current()
		if s == open {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			}
			continue
		}
		if err := w.store.waitClear(ctx); err != nil {
			return err
		}
		if s, _ := w.breaker.current(); s != open {
			return nil
		}
	}
}

// sampleBacklog reads consumer info on an interval for the backlog metrics.
func (w *Worker) sampleBacklog(ctx context.Context) {
	t := time.NewTicker(w.cfg.BacklogInterval)
	defer t.Stop()
	for {
		infoCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := w.cons.Info(infoCtx)
		cancel()
		if err == nil {
			w.cfg.Metrics.Backlog(int(info.NumPending), info.NumAckPending, info.NumRedelivered)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
