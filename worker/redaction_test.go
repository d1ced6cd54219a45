package worker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// leakToken is the Apinizer token of the redaction test: recognisable, so
// that finding it anywhere is unambiguous.
const leakToken = "TOKEN-7f3a9c-DO-NOT-LEAK"

// TestRedactionFullWorkloadLeaksNeitherTokenNorCertificate runs every job
// kind, a partial deployment, a retried 503 (whose body echoes the token), a
// permanent 400, a panic and an invalid job carrying an Authorization header,
// with a recognisable token and certificate, then searches every log line,
// result, stored stream message (dead letters, ledger, advisories), ledger
// value, metric and error string for them.
func TestRedactionFullWorkloadLeaksNeitherTokenNorCertificate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	certPEM, err := selfsigned.PEM("redaction test certificate")
	if err != nil {
		t.Fatal(err)
	}
	// The secret to look for: the certificate's first base64 line.
	certBody := strings.Split(certPEM, "\n")[1]
	if len(certBody) < 40 {
		t.Fatalf("certificate line %q too short to be recognisable", certBody)
	}

	sim := apinizertest.NewServer(apinizertest.Config{Token: leakToken})
	t.Cleanup(sim.Close)
	sim.AddProject(project, "production", "staging")
	sim.AddProject("Partial", "production", "staging")
	sim.FailEnvironment("Partial", "staging", true)
	sim.AddCertificate(project, "updated", certPEM)
	sim.AddCertificate(project, "deleted", certPEM)
	sim.AddCertificate(project, "cursed", certPEM)
	sim.AddKey(project, "key")
	sim.AddKey(project, "flaky")
	sim.AddKey("Partial", "half")
	sim.AddCredential(project, "user", true)
	sim.AddCredential(project, "gone-user", true)
	// One 503 whose body echoes the token, then the real answer.
	sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/keys/flaky/", Times: 1,
		Reply: apinizertest.ErrorReply(503, "service_unavailable", "upstream refused Bearer "+leakToken)})

	logs := &capture.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec, reg := startRedactionWorker(t, b, sim, log)

	rs := b.watchResults(t)
	fields := jobs.CertificateFields{Alias: "alias", CertificateDescription: "description",
		EnvironmentList: []string{"production", "staging"}, PEMEncodedFile: certPEM}
	valid := []jobs.Job{
		&jobs.CertificateUpdate{JobID: "r-update", ProjectName: project, CertificateName: "updated", CertificateFields: fields},
		&jobs.CertificateCreate{JobID: "r-create", ProjectName: project, CertificateName: "created", CertificateFields: fields},
		&jobs.CertificateDelete{JobID: "r-cert-delete", ProjectName: project, CertificateName: "deleted"},
		&jobs.KeyDelete{JobID: "r-key-delete", ProjectName: project, KeyName: "key", JWKDeleteAction: jobs.JWKDeleteDelete},
		&jobs.CredentialDelete{JobID: "r-cred-delete", ProjectName: project, Username: "gone-user"},
		&jobs.CredentialPublicKeyDelete{JobID: "r-pubkey-delete", ProjectName: project, Username: "user"},
		&jobs.KeyDelete{JobID: "r-partial", ProjectName: "Partial", KeyName: "half"},
		&jobs.KeyDelete{JobID: "r-flaky", ProjectName: project, KeyName: "flaky"},
		&jobs.KeyDelete{JobID: "r-refused", ProjectName: project, KeyName: "no-such-key"},
		&jobs.CertificateCreate{JobID: "r-refused-cert", ProjectName: "NoSuchProject", CertificateName: "c", CertificateFields: fields},
		&jobs.CertificateUpdate{JobID: "r-cursed", ProjectName: project, CertificateName: "cursed", CertificateFields: fields},
	}
	b.publish(t, valid...)
	// An invalid job (a private key after the certificate) whose producer
	// also put the token in a header by mistake.
	invalid := nats.NewMsg(jobs.SubjectCertificateCreate)
	invalid.Data = []byte(mustJSON(t, map[string]any{
		"jobId": "r-invalid", "projectName": project, "certificateName": "c", "alias": "a", "certificateDescription": "d",
		"environmentList": []string{"production"},
		"pemEncodedFile":  certPEM + "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n",
	}))
	invalid.Header.Set(nats.MsgIdHdr, "r-invalid")
	invalid.Header.Set("Authorization", "Bearer "+leakToken)
	invalid.Header.Set("X-Apinizer-Token", leakToken)
	if _, err := b.js.PublishMsg(context.Background(), invalid); err != nil {
		t.Fatal(err)
	}

	got := rs.next(t, len(valid)+1, 60*time.Second)
	want := map[string]jobs.Status{
		"r-update": jobs.StatusSucceeded, "r-create": jobs.StatusSucceeded, "r-cert-delete": jobs.StatusSucceeded,
		"r-key-delete": jobs.StatusSucceeded, "r-cred-delete": jobs.StatusSucceeded, "r-pubkey-delete": jobs.StatusSucceeded,
		"r-partial": jobs.StatusPartial, "r-flaky": jobs.StatusSucceeded,
		"r-refused": jobs.StatusFailed, "r-refused-cert": jobs.StatusFailed, "r-cursed": jobs.StatusFailed, "r-invalid": jobs.StatusFailed,
	}
	for id, status := range want {
		if r := got[id]; r.Status != status {
			t.Errorf("%s: %s %+v, want %s (the workload did not run as designed)", id, r.Status, r.Error, status)
		}
	}
	if r := got["r-flaky"]; r.Attempts != 2 {
		t.Errorf("r-flaky: %d attempts, want 2 (a 503, then success)", r.Attempts)
	}
	if r := got["r-cursed"]; r.Error == nil || r.Error.Code != "worker_panic" {
		t.Errorf("r-cursed: %+v, want worker_panic", r.Error)
	}
	poll.Until(t, 10*time.Second, "four dead letters", func() bool { return b.streamMsgs(t, streams.DeadLetters) == 4 })

	// The search is not vacuous: the token reached Apinizer, the
	// certificate was uploaded and is kept in the certificate jobs' dead
	// letters.
	sentToken, uploaded := false, false
	for _, r := range sim.Requests() {
		sentToken = sentToken || (r.Header.Get("Authorization") == "Bearer "+leakToken && r.Status == 200)
		uploaded = uploaded || strings.Contains(r.Files["pemEncodedFile"], certBody)
	}
	if !sentToken || !uploaded {
		t.Fatalf("token sent and accepted: %t, certificate uploaded: %t; want both", sentToken, uploaded)
	}

	arts := collectArtefacts(t, b.js, logs, reg, rec)
	certInPayload := 0
	for _, a := range arts {
		if strings.Contains(a.text, leakToken) {
			t.Errorf("LEAK: the Apinizer token appears in %s", a.where)
		}
		if !a.dlq {
			if strings.Contains(a.text, certBody) {
				t.Errorf("LEAK: the certificate appears in %s", a.where)
			}
			continue
		}
		// A dead letter keeps the original job for replay: the certificate
		// may be in "payload", and nowhere else in the record.
		var m map[string]any
		if err := json.Unmarshal([]byte(a.text), &m); err != nil {
			t.Errorf("%s is not JSON: %v", a.where, err)
			continue
		}
		if p, _ := m["payload"].(string); strings.Contains(p, certBody) {
			certInPayload++
		}
		delete(m, "payload")
		rest, _ := json.Marshal(m)
		if strings.Contains(string(rest), certBody) {
			t.Errorf("LEAK: the certificate appears in %s outside its payload (error, headers)", a.where)
		}
	}
	// r-refused-cert, r-cursed and r-invalid, each seen twice: as stored and
	// as dlq.List decodes it.
	if certInPayload != 6 {
		t.Errorf("the certificate is in %d dead-letter payloads, want 6 (3 jobs kept for replay, stored and listed)", certInPayload)
	}
	t.Logf("searched %d artefacts (%d log bytes)", len(arts), len(logs.String()))
}

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
