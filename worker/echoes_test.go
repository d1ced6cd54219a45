package worker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestLargeApinizerMessageGivesOnePUTAndOneSmallResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddCertificate(project, "big", b.pem)
	b.sim.AddFault(apinizertest.Fault{Method: http.MethodPut, Message: strings.Repeat("xé", (1<<20-8<<10)/3)})
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})
	b.publish(t, &jobs.CertificateUpdate{JobID: "big-message", ProjectName: project, CertificateName: "big", CertificateFields: b.certFields()})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msg, err := rs.cons.Next(jetstream.FetchContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	var r jobs.Result
	if err := json.Unmarshal(msg.Data(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != jobs.StatusSucceeded || len(msg.Data()) >= jobs.MaxResultSize {
		t.Errorf("result %s of %d bytes, want succeeded under %d", r.Status, len(msg.Data()), jobs.MaxResultSize)
	}
	puts := 0
	for _, req := range b.sim.Requests() {
		if req.Method == http.MethodPut {
			puts++
		}
	}
	if puts != 1 {
		t.Errorf("%d PUTs, want 1", puts)
	}
}

func TestMalformedTraceparentIsDroppedAndTheJobRunsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rs := b.watchResults(t)
	_, reg := b.startWorker(t, workerOpts{})
	bad := []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x01", strings.Repeat("j", 5000), "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	for i, tp := range bad {
		key := "traced-" + string(rune('a'+i))
		b.sim.AddKey(project, key)
		msg, err := jobs.NewMsg(&jobs.KeyDelete{JobID: key, ProjectName: project, KeyName: key})
		if err != nil {
			t.Fatal(err)
		}
		msg.Header["traceparent"] = []string{tp}
		msg.Header[dlq.ReplayOfHeader] = []string{strings.Repeat("r", 60_000)}
		if _, err := b.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	got := rs.next(t, len(bad), 20*time.Second)
	for id, r := range got {
		if r.Status != jobs.StatusSucceeded || r.Attempts != 1 || r.ReplayOf != "" {
			t.Errorf("%s: %s after %d attempts, replayOf %d bytes; want succeeded after 1, no replayOf", id, r.Status, r.Attempts, len(r.ReplayOf))
		}
	}
	for _, req := range b.sim.Requests() {
		if req.Header.Get("traceparent") != "" {
			t.Errorf("traceparent %q sent to Apinizer", req.Header.Get("traceparent"))
		}
	}
	if n := len(b.sim.Requests()); n != len(bad) {
		t.Errorf("%d requests, want %d", n, len(bad))
	}
	if s := gauge(t, reg, "apiops_circuit_breaker_state"); s != 0 {
		t.Errorf("breaker state %v, want closed", s)
	}
}
