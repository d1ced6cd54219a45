package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

func TestDuplicatesApplyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 200
	for i := range n {
		b.sim.AddCredential(project, fmt.Sprintf("user-%d", i), true)
	}
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{concurrency: 8})
	b.startWorker(t, workerOpts{concurrency: 8})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	duplicates := 0
	for i := range n {
		job := &jobs.CredentialPublicKeyDelete{JobID: fmt.Sprintf("dup-%d", i), ProjectName: project, Username: fmt.Sprintf("user-%d", i)}
		// Twice with the same Nats-Msg-Id: the server drops the second.
		for range 2 {
			ack, err := jobs.Publish(ctx, b.js, job)
			if err != nil {
				t.Fatal(err)
			}
			if ack.Duplicate {
				duplicates++
			}
		}
		// Once more as if after the duplicate window: no header, only the
		// body's job id, so only the ledger can recognise it.
		body, err := jobs.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.js.Publish(ctx, job.Subject(), body); err != nil {
			t.Fatal(err)
		}
	}
	if duplicates != n {
		t.Errorf("server reported %d duplicate publishes, want %d", duplicates, n)
	}

	got := rs.next(t, n, 60*time.Second)
	for id, r := range got {
		if r.Status != jobs.StatusSucceeded || r.Attempts != 1 {
			t.Errorf("%s: status %s after %d attempts, want succeeded after 1", id, r.Status, r.Attempts)
		}
	}
	// Every copy is settled once the jobs stream is empty; only then are the
	// counts final.
	poll.Until(t, 30*time.Second, "every copy to be settled", func() bool { return b.streamMsgs(t, streams.Jobs) == 0 })
	if calls := len(b.sim.Requests()); calls != n {
		t.Errorf("simulator received %d calls, want exactly %d", calls, n)
	}
	if msgs := b.streamMsgs(t, streams.Results); msgs != n {
		t.Errorf("results stream holds %d results, want exactly %d", msgs, n)
	}
}

func TestPerResourceOrderHoldsWhateverTheDeliveryOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const resources = 20
	type plan struct {
		name       string
		first, sec string // PEMs of the two updates
		deleted    bool
	}
	plans := make([]plan, resources)
	for i := range plans {
		p := plan{name: fmt.Sprintf("cert-%d", i), deleted: i%2 == 1}
		p.first, p.sec = newPEM(t), newPEM(t)
		plans[i] = p
		b.sim.AddCertificate(project, p.name, b.pem)
		if i%3 == 0 {
			// The first call on this resource fails, so its job comes back
			// after the later ones: delivered out of order.
			b.sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/" + project + "/certificates/" + p.name + "/", Times: 1,
				Reply: apinizertest.ErrorReply(503, "unavailable", "try later")})
		}
	}
	rs := b.watchResults(t)
	noRetry := executor.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxElapsedTime: time.Second, Multiplier: 1, MaxAttempts: 1}
	b.startWorker(t, workerOpts{concurrency: 4, retry: noRetry})
	b.startWorker(t, workerOpts{concurrency: 4, retry: noRetry})

	// Round-robin across resources: first updates, second updates, deletes.
	var all []jobs.Job
	byJob := map[string]string{}
	update := func(p plan, n int, pem string) *jobs.CertificateUpdate {
		f := b.certFields()
		f.PEMEncodedFile = pem
		return &jobs.CertificateUpdate{JobID: fmt.Sprintf("%s-update-%d", p.name, n), ProjectName: project, CertificateName: p.name, CertificateFields: f}
	}
	for _, p := range plans {
		all = append(all, update(p, 1, p.first))
	}
	for _, p := range plans {
		all = append(all, update(p, 2, p.sec))
	}
	for _, p := range plans {
		if p.deleted {
			all = append(all, &jobs.CertificateDelete{JobID: p.name + "-delete", ProjectName: project, CertificateName: p.name})
		}
	}
	for _, j := range all {
		byJob[j.ID()] = j.Resource().Name
	}
	b.publish(t, all...)

	got := rs.next(t, len(all), 60*time.Second)
	superseded := 0
	for id, r := range got {
		switch r.Status {
		case jobs.StatusSucceeded:
		case jobs.StatusSuperseded:
			superseded++
			if byJob[r.SupersededBy] != byJob[id] || r.SupersededBy == id {
				t.Errorf("%s superseded by %q, want a newer job of the same resource", id, r.SupersededBy)
			}
		default:
			t.Errorf("%s ended %s (%+v), want succeeded or superseded", id, r.Status, r.Error)
		}
	}
	for _, p := range plans {
		c, exists := b.sim.Certificate(project, p.name)
		switch {
		case p.deleted && exists:
			t.Errorf("%s exists, want it deleted by its last job", p.name)
		case !p.deleted && !exists:
			t.Errorf("%s was deleted, want it updated", p.name)
		case !p.deleted && c.PEM != p.sec:
			t.Errorf("%s holds an older certificate, want the one of its last update", p.name)
		}
	}
	for res, n := range b.sim.MaxInFlight() {
		if n > 1 {
			t.Errorf("%s had %d requests in flight at once, want at most 1", res, n)
		}
	}
	t.Logf("%d jobs on %d resources, %d superseded", len(all), resources, superseded)
}

func TestOlderJobIsSupersededByANewerOneAppliedFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddCertificate(project, "c", b.pem)
	// The first update's first call fails and its retry comes after the
	// second update: one worker holding one job at a time makes the order
	// certain.
	b.sim.AddFault(apinizertest.Fault{Method: "PUT", Times: 1, Reply: apinizertest.ErrorReply(503, "unavailable", "try later")})
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{concurrency: 1, maxJobs: 1, retry: executor.RetryPolicy{
		InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxElapsedTime: time.Second, Multiplier: 1, MaxAttempts: 1}})

	older, newer := newPEM(t), newPEM(t)
	f1, f2 := b.certFields(), b.certFields()
	f1.PEMEncodedFile, f2.PEMEncodedFile = older, newer
	b.publish(t,
		&jobs.CertificateUpdate{JobID: "older", ProjectName: project, CertificateName: "c", CertificateFields: f1},
		&jobs.CertificateUpdate{JobID: "newer", ProjectName: project, CertificateName: "c", CertificateFields: f2},
	)
	got := rs.next(t, 2, 30*time.Second)
	if r := got["older"]; r.Status != jobs.StatusSuperseded || r.SupersededBy != "newer" || r.Attempts != 1 {
		t.Errorf("older: %s by %q after %d attempts, want superseded by \"newer\" after 1", r.Status, r.SupersededBy, r.Attempts)
	}
	if r := got["newer"]; r.Status != jobs.StatusSucceeded {
		t.Errorf("newer: %s, want succeeded", r.Status)
	}
	if c, _ := b.sim.Certificate(project, "c"); c.PEM != newer {
		t.Error("the certificate is not the newer one")
	}
}

func newPEM(t *testing.T) string {
	t.Helper()
	p, err := selfsigned.PEM("worker test " + strings.ReplaceAll(t.Name(), "/", " "))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
