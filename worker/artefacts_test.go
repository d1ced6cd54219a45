package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// errorRecorder wraps the executor and keeps every error string Execute
// returns, in the forms a caller could print.
type errorRecorder struct {
	worker.Executor
	mu   sync.Mutex
	errs []string
}

func (r *errorRecorder) Execute(ctx context.Context, job jobs.Job, call executor.Call) (executor.Response, error) {
	inner := call.OnRetry
	call.OnRetry = func(attempt int, err error, wait time.Duration) {
		r.record(err)
		if inner != nil {
			inner(attempt, err, wait)
		}
	}
	resp, err := r.Executor.Execute(ctx, job, call)
	r.record(err)
	return resp, err
}

func (r *errorRecorder) record(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf("%v | %+v | %#v", err, err, err)
	var apiErr *executor.APIError
	if errors.As(err, &apiErr) {
		s += " | " + apiErr.Code + " | " + apiErr.Message
	}
	r.errs = append(r.errs, s)
}

func (r *errorRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// artefact is one thing the worker produced that an operator, a consumer of
// results or an attacker with read access could see.
type artefact struct {
	where string
	text  string
	// dlq is set for a dead letter: the certificate may appear in its
	// payload field (the job kept for replay), nowhere else in it.
	dlq bool
}

// collectArtefacts gathers everything the workload left behind.
func collectArtefacts(t *testing.T, js jetstream.JetStream, logs *capture.Buffer, reg *prometheus.Registry, rec *errorRecorder) []artefact {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var arts []artefact

	for i, line := range strings.Split(logs.String(), "\n") {
		arts = append(arts, artefact{where: fmt.Sprintf("log line %d", i+1), text: line})
	}
	for i, e := range rec.all() {
		arts = append(arts, artefact{where: fmt.Sprintf("executor error %d", i+1), text: e})
	}

	// Every message stored in every stream, headers included: results,
	// dead letters, advisories, the ledger's key-value stream. The jobs
	// themselves are acknowledged and gone from the work queue.
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if name == streams.Jobs && info.State.Msgs != 0 {
			t.Errorf("jobs stream still holds %d messages", info.State.Msgs)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("%s #%d: %v", name, seq, err)
			}
			where := fmt.Sprintf("stream %s message %d (%s)", name, seq, m.Subject)
			hdr, _ := json.Marshal(m.Header)
			arts = append(arts, artefact{where: where + " headers", text: string(hdr)})
			arts = append(arts, artefact{where: where, text: string(m.Data), dlq: name == streams.DeadLetters})
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}

	// The ledger as a reader of the bucket sees it.
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatalf("ledger %s: %v", k, err)
		}
		arts = append(arts, artefact{where: "ledger key " + k, text: k + " " + string(e.Value())})
	}

	// The dead letters as dlq.List decodes them (an operator's view).
	recs, err := dlq.List(ctx, js, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		b, _ := json.Marshal(r)
		arts = append(arts, artefact{where: "dead letter of " + r.JobID, text: string(b), dlq: true})
	}

	// The metrics as Prometheus scrapes them.
	rr := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rr.Body.String(), "apiops_") {
		t.Fatalf("metrics scrape has no apiops_ series:\n%s", rr.Body.String())
	}
	arts = append(arts, artefact{where: "the metrics scrape", text: rr.Body.String()})
	return arts
}
