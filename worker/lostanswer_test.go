package worker_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// TestLostAnswerOnTheFirstDeliveryEndsAsTheTruthOnTheNext makes Apinizer
// apply each job kind and drop the connection without answering. The
// executor is allowed one attempt, so the retry is a redelivery, which only
// the ledger's count of earlier attempts tells from a first try: it meets
// the changed state and must end succeeded, the change in place once.
func TestLostAnswerOnTheFirstDeliveryEndsAsTheTruthOnTheNext(t *testing.T) {
	t.Parallel()
	newPEM, err := selfsigned.PEM("lost answer")
	if err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		name   string
		method string
		// job adds what the job acts on to the simulator and returns it.
		job func(b *bundle) jobs.Job
		// holds reports whether the simulator holds what the job asked for.
		holds func(sim *apinizertest.Server) bool
	}{
		{"certificate.create", http.MethodPost, func(b *bundle) jobs.Job {
			return &jobs.CertificateCreate{JobID: "lost-create", ProjectName: project, CertificateName: "new-cert", CertificateFields: b.certFields()}
		}, func(sim *apinizertest.Server) bool {
			c, ok := sim.Certificate(project, "new-cert")
			return ok && c.Revision == 1
		}},
		{"certificate.update", http.MethodPut, func(b *bundle) jobs.Job {
			b.sim.AddCertificate(project, "rotated", b.pem)
			f := b.certFields()
			f.PEMEncodedFile = newPEM
			return &jobs.CertificateUpdate{JobID: "lost-update", ProjectName: project, CertificateName: "rotated", CertificateFields: f}
		}, func(sim *apinizertest.Server) bool {
			// A redelivered update is sent again: an overwrite with the
			// same content, so the state is the job's either way.
			c, ok := sim.Certificate(project, "rotated")
			return ok && c.PEM == newPEM
		}},
		{"certificate.delete", http.MethodDelete, func(b *bundle) jobs.Job {
			b.sim.AddCertificate(project, "old-cert", b.pem)
			return &jobs.CertificateDelete{JobID: "lost-cert-delete", ProjectName: project, CertificateName: "old-cert"}
		}, func(sim *apinizertest.Server) bool {
			_, ok := sim.Certificate(project, "old-cert")
			return !ok
		}},
		{"key.delete", http.MethodDelete, func(b *bundle) jobs.Job {
			b.sim.AddKey(project, "old-key")
			return &jobs.KeyDelete{JobID: "lost-key-delete", ProjectName: project, KeyName: "old-key"}
		}, func(sim *apinizertest.Server) bool { return !sim.KeyExists(project, "old-key") }},
		{"credential.delete", http.MethodDelete, func(b *bundle) jobs.Job {
			b.sim.AddCredential(project, "leaver", true)
			return &jobs.CredentialDelete{JobID: "lost-credential-delete", ProjectName: project, Username: "leaver"}
		}, func(sim *apinizertest.Server) bool {
			_, ok := sim.Credential(project, "leaver")
			return !ok
		}},
		{"credential.publickey.delete", http.MethodDelete, func(b *bundle) jobs.Job {
			b.sim.AddCredential(project, "rotating", true)
			return &jobs.CredentialPublicKeyDelete{JobID: "lost-publickey-delete", ProjectName: project, Username: "rotating"}
		}, func(sim *apinizertest.Server) bool {
			c, ok := sim.Credential(project, "rotating")
			return ok && !c.HasPublicKey
		}},
	}
	revisions := []struct {
		name  string
		style apinizertest.ResponseStyle
	}{
		{"the older revision", apinizertest.StyleClassic},
		{"the current revision", apinizertest.StyleCurrent},
	}
	for _, rev := range revisions {
		for _, k := range kinds {
			t.Run(k.name+" answered by "+rev.name+" succeeds on its redelivery", func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				b.sim.SetStyle(rev.style)
				job := k.job(b)
				b.sim.AddFault(apinizertest.Fault{Method: k.method, PathPrefix: "/apiops/", LoseAnswer: true, Times: 1})
				rs := b.watchResults(t)
				b.startWorker(t, workerOpts{retry: executor.RetryPolicy{
					InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1, MaxAttempts: 1,
				}})
				b.publish(t, job)

				r := rs.next(t, 1, 20*time.Second)[job.ID()]
				if r.Status != jobs.StatusSucceeded || r.Attempts < 2 {
					t.Fatalf("result %s after %d attempts %+v, want succeeded after the lost attempt and another", r.Status, r.Attempts, r.Error)
				}
				if !k.holds(b.sim) {
					t.Errorf("the simulator's state is not what %s asked for: %+v", k.name, b.sim.State())
				}
			})
		}
	}
}
