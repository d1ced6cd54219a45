package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
)

// traceHeader is the W3C trace context header carried from the job message
// to the Apinizer request and the result message.
const traceHeader = "traceparent"

// jobRef is a job message as its result and its dead letter name it: a
// delivery's, or one the server gave up on (advisories.go).
type jobRef struct {
	subject    string
	header     nats.Header
	data       []byte
	seq        uint64 // in the jobs stream
	deliveries uint64
	started    time.Time // when work on the job began
	job        jobs.Job  // nil until decoded, and for an invalid job
	jobID      string    // empty when even an invalid job names none
	// unknownSubject is set when the subject is no job subject.
	unknownSubject bool
}

// decode reads the job, keeping the id an invalid job names.
func (j *jobRef) decode() error {
	job, err := jobs.Decode(j.subject, j.header, j.data)
	if err != nil {
		var de *jobs.DecodeError
		if errors.As(err, &de) {
			j.jobID = de.JobID
		}
		j.unknownSubject = errors.Is(err, jobs.ErrUnknownSubject)
		return err
	}
	j.job, j.jobID = job, job.ID()
	return nil
}

// result builds the job's result, encoded. It never carries the
// certificate or the token: only names, statuses and Apinizer's messages.
func (j *jobRef) result(o outcome, now time.Time) jobs.Encoded {
	r := jobs.Result{
		JobID:            j.jobID,
		Subject:          j.subject,
		Status:           o.status,
		Attempts:         o.attempts,
		StartedAt:        j.started.UTC(),
		FinishedAt:       now.UTC(),
		DeploymentResult: o.deployment,
		Live:             o.live,
		Error:            o.err,
		SupersededBy:     o.supersededBy,
	}
	// Only a job id is echoed: the header is the producer's to write.
	if id, ok := jobs.ParseReplayOf(j.header.Get(dlq.ReplayOfHeader)); ok {
		r.ReplayOf = id
	}
	if j.jobID == "" {
		// A message naming no usable job id still gets its result, keyed
		// by the only thing that names it.
		r.StreamSeq = j.seq
	}
	if j.job != nil {
		res := j.job.Resource()
		r.ProjectName, r.ResourceName = res.Project, res.Name
	}
	// The result is published, kept in the ledger and in dead letters: an
	// oversize one would fail on every delivery, after the change was made.
	return jobs.BoundEncoded(r, jobs.MaxResultSize)
}

// resultSubject is where the job's result goes: its subject's results
// subject, or, for a message that names neither a job subject nor a job id,
// jobs.InvalidResultSubject.
func (j *jobRef) resultSubject() string {
	if j.jobID == "" && j.unknownSubject {
		return jobs.InvalidResultSubject
	}
	return jobs.ResultSubject(j.subject)
}

// resultMsgID deduplicates the job's result: by job id, or by stream
// sequence for a message that names no usable job id.
func (j *jobRef) resultMsgID(r jobs.Result) string {
	if r.JobID == "" {
		return jobs.SeqResultMsgID(j.seq)
	}
	return jobs.ResultMsgID(r.JobID)
}

// deadLetter builds the job's dead-letter record, carrying the error and
// attempts of its result r.
func (j *jobRef) deadLetter(reason string, r jobs.Result, now time.Time) dlq.Record {
	rec := dlq.NewRecord(j.subject, j.header, j.data, reason)
	rec.JobID, rec.StreamSeq, rec.Deliveries = j.jobID, j.seq, j.deliveries
	rec.FirstSeen, rec.DeadAt = j.started.UTC(), now.UTC()
	rec.Error, rec.Attempts = r.Error, r.Attempts
	return rec
}

// delivery is one delivery of a job message.
type delivery struct {
	jobRef
	msg jetstream.Msg

	// The delivery's logger adds its attributes to the worker's only once a
	// line is written (lazyAttrs): most jobs log nothing below warn, and a
	// handler formats the attributes it is given at once. The progress
	// reporter logs too, hence the mutex.
	logMu sync.Mutex
	base  *slog.Logger
	attrs []slog.Attr
	log   *slog.Logger
}

// with adds attributes, given as pairs of a string key and a value, to the
// delivery's log lines.
func (d *delivery) with(args ...any) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	for i := 0; i+1 < len(args); i += 2 {
		key, _ := args[i].(string)
		d.attrs = append(d.attrs, slog.Any(key, args[i+1]))
	}
	d.log = nil
}

// logger returns the delivery's logger, carrying its attributes.
func (d *delivery) logger() *slog.Logger {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	if d.log == nil {
		// Clipped: a later with appends to a copy, not under this logger.
		d.log = slog.New(&lazyAttrs{base: d.base.Handler(), attrs: slices.Clip(d.attrs)})
	}
	return d.log
}

// lazyAttrs is a delivery's log handler: base with the delivery's
// attributes, added once a line gets past the level. Every job asks for its
// logger to say how it ended; at a level that drops that line, formatting
// the attributes up front was most of the cost of a job's logging.
type lazyAttrs struct {
	base  slog.Handler
	attrs []slog.Attr
	once  sync.Once
	h     slog.Handler
}

func (l *lazyAttrs) handler() slog.Handler {
	l.once.Do(func() { l.h = l.base.WithAttrs(l.attrs) })
	return l.h
}

func (l *lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return l.base.Enabled(ctx, level)
}

func (l *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	return l.handler().Handle(ctx, r)
}

func (l *lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler { return l.handler().WithAttrs(attrs) }

func (l *lazyAttrs) WithGroup(name string) slog.Handler { return l.handler().WithGroup(name) }

// handle decides the delivery's fate, then settles it.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	w.cfg.Metrics.InFlight(1)
	defer w.cfg.Metrics.InFlight(-1)
	w.inFlight.Add(1)
	defer w.inFlight.Add(-1)

	// Room for the attributes every job gets: subject, stream_seq,
	// delivery, job_id, project and attempt.
	d := &delivery{msg: msg, base: w.log, attrs: make([]slog.Attr, 0, 6)}
	d.subject, d.header, d.data, d.started = msg.Subject(), msg.Headers(), msg.Data(), w.cfg.Now()
	if meta, err := msg.Metadata(); err == nil {
		d.seq, d.deliveries = meta.Sequence.Stream, meta.NumDelivered
	}
	d.with("subject", d.subject, "stream_seq", d.seq, "delivery", d.deliveries)
	var h *hold
	if w.cfg.Ledger != nil {
		h = &hold{ledger: w.cfg.Ledger}
	}

	f := w.processSafely(ctx, d, h)
	// Settling may wait out a JetStream outage: the message is kept alive
	// meanwhile, so that the outage spends no delivery.
	w.keepingAlive(ctx, d, nil, func(context.Context) fate {
		w.settle(ctx, d, h, f)
		return fate{}
	})
}

// processSafely turns a panic anywhere in processing into a failed result for
// this job alone.
func (w *Worker) processSafely(ctx context.Context, d *delivery, h *hold) (f fate) {
	defer func() {
		if p := recover(); p != nil {
			w.cfg.Metrics.Panic()
			d.logger().Error("panic while handling job", "panic", fmt.Sprint(p), "stack", stack())
			f = panicked()
		}
	}()
	return w.process(ctx, d, h)
}

func (w *Worker) process(ctx context.Context, d *delivery, h *hold) fate {
	if err := d.decode(); err != nil {
		f := invalidJob(err)
		w.cfg.Metrics.InvalidJob(f.reason)
		d.with("job_id", d.jobID)
		d.logger().Debug("invalid job", "code", f.reason, "err", err) // settle warns, once
		return f
	}
	d.with("job_id", d.jobID, "project", d.job.Resource().Project)
	return w.keepingAlive(ctx, d, h, func(ctx context.Context) fate {
		if h == nil {
			return w.apply(ctx, d, nil)
		}
		return w.applyOnce(ctx, d, h)
	})
}

// keepingAlive runs f while reporting progress on the message and renewing
// the ledger leases of h.
func (w *Worker) keepingAlive(ctx context.Context, d *delivery, h *hold, f func(context.Context) fate) fate {
	ctx, cancel := context.WithCancel(ctx)
	// Most jobs finish long before the first progress report is due, so the
	// reporter only runs once it is: a timer costs far less than a goroutine
	// with a ticker per job.
	reported := make(chan struct{})
	t := time.AfterFunc(w.ackWait/3, func() {
		defer close(reported)
		w.keepAlive(ctx, cancel, d, h)
	})
	defer func() {
		cancel()
		if !t.Stop() {
			<-reported // started: wait for it to see the cancel
		}
	}()
	return f(ctx)
}

// keepAlive reports progress every third of the ack wait so that the server
// does not redeliver a job still being worked on, and renews the ledger
// leases; if the claim was taken over, it cancels the work.
func (w *Worker) keepAlive(ctx context.Context, cancel context.CancelFunc, d *delivery, h *hold) {
	// It starts when the first report is due.
	t := time.NewTicker(w.ackWait / 3)
	defer t.Stop()
	for ctx.Err() == nil {
		if err := d.msg.InProgress(); err != nil {
			d.logger().Warn("could not report progress", "err", err)
		}
		// The renewal must not be cut off by the job finishing meanwhile:
		// its write could land with the reply lost.
		renewCtx, cancelRenew := context.WithTimeout(context.WithoutCancel(ctx), w.ackWait/3)
		err := h.renew(renewCtx)
		cancelRenew()
		if errors.Is(err, ledger.ErrLost) {
			d.logger().Warn("claim lost while working; stopping", "err", err)
			cancel()
			return
		} else if err != nil && ctx.Err() == nil {
			d.logger().Warn("could not renew lease", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// panicError is a recovered panic, reported as the job's error.
type panicError struct{ value any }

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

func stack() string {
	buf := make([]byte, 4096)
	return string(buf[:runtime.Stack(buf, false)])
}
