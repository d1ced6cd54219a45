package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
)

// The JetStream objects the worker stores a job's bookkeeping into, as the
// object label of apiops_jetstream_unavailable names them.
const (
	objLedger  = streams.LedgerBucket
	objResults = streams.Results
	objDLQ     = streams.DeadLetters
)

// Server error codes that say JetStream cannot store anything into the
// object for now, whichever job asks: resources exhausted, no quorum or
// peers, the stream or consumer offline or gone. nats.go names only a few
// of them.
var storeOutageCodes = []jetstream.ErrorCode{
	10002,        // account resources exceeded
	10005,        // no suitable peers
	10008,        // JetStream system temporarily unavailable
	10023,        // insufficient resources
	10028,        // memory resources exceeded
	10047,        // insufficient storage resources
	10077,        // stream store failed
	10118, 10194, // stream offline
	10119, 10195, // consumer offline
	jetstream.JSErrCodeStreamNotFound,
	jetstream.JSErrCodeConsumerNotFound,
}

// isStoreOutage reports whether err says that JetStream cannot store for any
// job: the outage is the bus's, not the job's, and must not spend the job's
// deliveries.
func isStoreOutage(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case isMissing(err), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &apiErr):
		return slices.Contains(storeOutageCodes, apiErr.ErrorCode)
	}
	return false
}

// isMissing reports whether err says a stream, consumer or bucket is not
// there (deleted, or never provisioned).
func isMissing(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted)
}

// storeOutage is the worker's view of the JetStream objects that cannot
// store: while a job waits for one, the worker takes no new job and /readyz
// says why. It counts the waiting jobs rather than remembering a state, so
// that it cannot outlive them: a job that stops waiting (its delivery
// timed out, the worker stops) without success lets new jobs in, and they
// find the outage again if it lasts.
type storeOutage struct {
	log     *slog.Logger
	metrics *metrics.Metrics

	mu      sync.Mutex
	waiting map[string]int    // object -> jobs waiting for it
	causes  map[string]string // object -> the last error
	// changed is closed and replaced when no job waits any more.
	changed chan struct{}
	// provisioned is when missing objects were last re-created.
	provisioned time.Time
}

func newStoreOutage(log *slog.Logger, m *metrics.Metrics) *storeOutage {
	return &storeOutage{log: log, metrics: m, waiting: map[string]int{}, causes: map[string]string{}, changed: make(chan struct{})}
}

// wait counts a job that starts waiting for object.
func (o *storeOutage) wait(object string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting[object] == 0 {
		o.log.Warn("JetStream cannot store; jobs wait, spending no delivery", "object", object, "err", err)
		o.metrics.JetStreamUnavailable(object, true)
	}
	o.waiting[object]++
	o.causes[object] = err.Error()
}

// cause records the latest error of an object a job waits for.
func (o *storeOutage) cause(object string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.causes[object] = err.Error()
}

// done counts a job that stops waiting for object, stored or not.
func (o *storeOutage) done(object string, stored bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waiting[object]--
	if o.waiting[object] > 0 {
		return
	}
	delete(o.waiting, object)
	delete(o.causes, object)
	o.metrics.JetStreamUnavailable(object, false)
	if stored {
		o.log.Info("JetStream stores again", "object", object)
	} else {
		o.log.Warn("no job waits for JetStream any more, none having stored", "object", object)
	}
	if len(o.waiting) == 0 {
		close(o.changed)
		o.changed = make(chan struct{})
	}
}

// summary says which objects cannot store and why, or "" if all can.
func (o *storeOutage) summary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	parts := make([]string, 0, len(o.causes))
	for obj, c := range o.causes {
		parts = append(parts, obj+": "+c)
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// waitClear returns once every object stores again, or ctx's error.
func (o *storeOutage) waitClear(ctx context.Context) error {
	o.mu.Lock()
	n, changed := len(o.waiting), o.changed
	o.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
		return nil
	}
}

// provisionDue reports whether missing objects may be re-created now: at
// most once a second, however many jobs find them missing.
func (o *storeOutage) provisionDue(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if now.Sub(o.provisioned) < time.Second {
		return false
	}
	o.provisioned = now
	return true
}

// stored runs step, a write of a job's bookkeeping into object. While it
// fails because JetStream cannot store (isStoreOutage), the worker is marked
// unavailable and the step is tried again with backoff, until it succeeds,
// fails otherwise, or stop ends; the caller keeps the message alive
// meanwhile, so the outage spends none of the job's deliveries. Each try is
// bounded by settleTimeout and survives stop's end, as settling must.
func stored[T any](stop context.Context, w *Worker, object string, step func(context.Context) (T, error)) (v T, err error) {
	wait, waiting := w.cfg.ProbeInterval, false
	defer func() {
		if waiting {
			w.store.done(object, !isStoreOutage(err))
		}
	}()
	for {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), settleTimeout)
		v, err = step(ctx)
		cancel()
		if !isStoreOutage(err) {
			return v, err
		}
		if !waiting {
			waiting = true
			w.store.wait(object, err)
		} else {
			w.store.cause(object, err)
		}
		w.reprovision(stop, object, err)
		if !sleep(stop, wait) {
			return v, err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// storedErr is stored for a step that returns only an error.
func storedErr(stop context.Context, w *Worker, object string, step func(context.Context) error) error {
	_, err := stored(stop, w, object, func(ctx context.Context) (struct{}, error) { return struct{}{}, step(ctx) })
	return err
}

// reprovision re-creates the topology at once when err says an object is
// missing and provisioning is on; with it off, the outage is only reported.
func (w *Worker) reprovision(ctx context.Context, object string, err error) {
	if !isMissing(err) || !w.store.provisionDue(w.cfg.Now()) {
		return
	}
	if w.cfg.Topology == nil {
		w.log.Error("a JetStream object is missing and provisioning is off: create it (see deploy/nats)", "object", object, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if perr := streams.Provision(ctx, w.js, *w.cfg.Topology); perr != nil {
		w.log.Warn("could not re-create the missing JetStream objects", "object", object, "err", perr)
		return
	}
	w.log.Warn("re-created the missing JetStream objects", "object", object, "err", err)
}

// storeUnavailable returns why the worker cannot take jobs for a JetStream
// outage, or nil.
func (w *Worker) storeUnavailable() error {
	if c := w.store.summary(); c != "" {
		return fmt.Errorf("JetStream cannot store: %s", c)
	}
	return nil
}
