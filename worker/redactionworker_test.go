package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// startRedactionWorker runs a worker whose executor uses leakToken against
// sim and logs to log; the job "r-cursed" panics.
func startRedactionWorker(t *testing.T, b *bundle, sim *apinizertest.Server, log *slog.Logger) (*errorRecorder, *prometheus.Registry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := b.js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := executor.New(executor.Config{
		BaseURL: sim.URL,
		Token:   func() (string, error) { return leakToken, nil },
		Retry:   executor.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: time.Second, Multiplier: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &errorRecorder{Executor: exec}
	kv, err := b.js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.New(kv, ledger.Config{Owner: "redaction", Lease: b.topo.AckWait * 2})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{
		Concurrency:     4,
		FetchWait:       500 * time.Millisecond,
		RedeliveryDelay: func(uint64) time.Duration { return 100 * time.Millisecond },
		Ledger:          led,
		Logger:          log,
		ProbeInterval:   20 * time.Millisecond,
		Metrics:         metrics.New(reg),
	}, b.js, cons, panicky{rec, "r-cursed"})
	if err != nil {
		t.Fatal(err)
	}
	stop := workertest.Run(t, w)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			rec.record(err)
		}
	})
	return rec, reg
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
