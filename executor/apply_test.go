package executor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

const myCertificate = "certificate/MyProject/my-certificate"

func certificateApply(name, pemText string, envs ...string) *jobs.CertificateApply {
	if len(envs) == 0 {
		envs = []string{"production", "staging"}
	}
	return &jobs.CertificateApply{CertificateUpdate: jobs.CertificateUpdate{
		JobID: "job-apply", ProjectName: "MyProject", CertificateName: name,
		CertificateFields: jobs.CertificateFields{
			Alias: name + "-alias", CertificateDescription: "applied", EnvironmentList: envs, PEMEncodedFile: pemText,
		},
		JWKUpdateAction: jobs.JWKUpdateUpdate,
	}}
}

// writes counts the requests of each write method the simulator received.
func writes(sim *apinizertest.Server) map[string]int {
	n := map[string]int{}
	for _, r := range sim.Requests() {
		if r.Method != http.MethodGet {
			n[r.Method]++
		}
	}
	return n
}

func thumbprintOf(t *testing.T, pemText string) string {
	t.Helper()
	th, err := jobs.Thumbprint(pemText)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// checkLive fails unless live has one entry per environment of envs, each
// serving pemText's certificate with its subject and dates.
func checkLive(t *testing.T, live []jobs.LiveCertificate, pemText string, envs ...string) {
	t.Helper()
	want := thumbprintOf(t, pemText)
	if len(live) != len(envs) {
		t.Fatalf("live = %+v, want one entry for each of %v", live, envs)
	}
	for i, l := range live {
		if l.EnvironmentName != envs[i] || l.SHA1Thumbprint != want || l.SubjectDN != "CN=executor test" ||
			!l.NotBefore.Before(time.Now()) || !l.NotAfter.After(time.Now()) {
			t.Errorf("live[%d] = %+v, want %s serving %s (CN=executor test, valid now)", i, l, envs[i], want)
		}
	}
}

func TestApplyWritesOnlyWhatDiffers(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("on a missing certificate it makes one POST, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			resp, err := b.client.Execute(context.Background(), certificateApply("new-certificate", b.pem), Call{})
			if err != nil || resp.Status != jobs.StatusSucceeded || resp.Attempts != 1 {
				t.Fatalf("Execute = %+v, %v; want succeeded after one attempt", resp, err)
			}
			if w := writes(b.sim); w[http.MethodPost] != 1 || len(w) != 1 {
				t.Errorf("writes = %v, want one POST", w)
			}
			checkLive(t, resp.Live, b.pem, "production", "staging")
		})
		t.Run("with the PEM already live it writes nothing and ends unchanged, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			resp, err := b.client.Execute(context.Background(), certificateApply("my-certificate", b.pem), Call{})
			if err != nil || resp.Status != jobs.StatusUnchanged || resp.Attempts != 0 || resp.Deployment != nil {
				t.Fatalf("Execute = %+v, %v; want unchanged after no attempt", resp, err)
			}
			if w := writes(b.sim); len(w) != 0 || len(b.sim.Applied()) != 0 {
				t.Errorf("writes = %v, applied = %v; want none", w, b.sim.Applied())
			}
			checkLive(t, resp.Live, b.pem, "production", "staging")
		})
		t.Run("with a new PEM it makes one PUT, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			fresh := testPEM(t)
			resp, err := b.client.Execute(context.Background(), certificateApply("my-certificate", fresh), Call{})
			if err != nil || resp.Status != jobs.StatusSucceeded {
				t.Fatalf("Execute = %+v, %v; want succeeded", resp, err)
			}
			if w := writes(b.sim); w[http.MethodPut] != 1 || len(w) != 1 {
				t.Errorf("writes = %v, want one PUT", w)
			}
			if q := b.sim.Requests(); !strings.Contains(findWrite(q).Query.Encode(), "jwkUpdateAction=UPDATE") {
				t.Errorf("the PUT's query %v lacks the job's jwkUpdateAction", findWrite(q).Query)
			}
			checkLive(t, resp.Live, fresh, "production", "staging")
		})
	}
	t.Run("a certificate live in only some environments is updated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.sim.ReplaceCertificate("MyProject", "my-certificate", "staging", testPEM(t))
		resp, err := b.client.Execute(context.Background(), certificateApply("my-certificate", b.pem), Call{})
		if err != nil || resp.Status != jobs.StatusSucceeded || b.sim.Applied()[myCertificate] != 1 {
			t.Fatalf("Execute = %+v, %v, applied %v; want one write, succeeded", resp, err, b.sim.Applied())
		}
		checkLive(t, resp.Live, b.pem, "production", "staging")
	})
}

// findWrite is the first request that is not a GET.
func findWrite(rs []apinizertest.Request) apinizertest.Request {
	for _, r := range rs {
		if r.Method != http.MethodGet {
			return r
		}
	}
	return apinizertest.Request{}
}

func TestPreconditionsWriteNothingOnAMismatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		job  func(b *bundle, expected string) jobs.Job
	}{
		{"certificate.apply", func(b *bundle, expected string) jobs.Job {
			j := certificateApply("my-certificate", testPEM(t))
			j.ExpectedThumbprint = expected
			return j
		}},
		{"certificate.update", func(b *bundle, expected string) jobs.Job {
			j := certificateUpdate(testPEM(t))
			j.ExpectedThumbprint = expected
			return j
		}},
		{"certificate.delete", func(b *bundle, expected string) jobs.Job {
			return &jobs.CertificateDelete{JobID: "job-delete", ProjectName: "MyProject", CertificateName: "my-certificate", ExpectedThumbprint: expected}
		}},
	}
	for _, c := range cases {
		t.Run(c.name+" fails precondition_failed after a change behind the worker's back", func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			expected := thumbprintOf(t, b.pem)
			b.sim.ReplaceCertificate("MyProject", "my-certificate", "staging", testPEM(t))
			resp, err := b.client.Execute(context.Background(), c.job(b, expected), Call{})
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StableCode() != CodePreconditionFailed || apiErr.Code != CodePreconditionFailed || class(err) != "permanent" {
				t.Fatalf("Execute = %+v, %v; want a permanent precondition_failed", resp, err)
			}
			if !strings.Contains(err.Error(), `"staging"`) || !strings.Contains(err.Error(), expected) {
				t.Errorf("error %q names neither the environment nor the expected thumbprint", err)
			}
			if w := writes(b.sim); len(w) != 0 || resp.Attempts != 0 {
				t.Errorf("writes = %v, attempts %d; want none", w, resp.Attempts)
			}
		})
		t.Run(c.name+" writes when the expected thumbprint is live, written lower-case with colons", func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			th := strings.ToLower(thumbprintOf(t, b.pem))
			var colons []string
			for i := 0; i < len(th); i += 2 {
				colons = append(colons, th[i:i+2])
			}
			resp, err := b.client.Execute(context.Background(), c.job(b, strings.Join(colons, ":")), Call{})
			if err != nil || resp.Status != jobs.StatusSucceeded || b.sim.Applied()[myCertificate] != 1 {
				t.Fatalf("Execute = %+v, %v, applied %v; want one write, succeeded", resp, err, b.sim.Applied())
			}
		})
	}
	t.Run("a redelivered update whose own write landed succeeds without a second write", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		j := certificateUpdate(testPEM(t))
		j.ExpectedThumbprint = thumbprintOf(t, b.pem)
		b.sim.ReplaceCertificate("MyProject", "my-certificate", "", j.PEMEncodedFile)
		resp, err := b.client.Execute(context.Background(), j, Call{PriorAttempts: 1})
		if err != nil || resp.Status != jobs.StatusSucceeded || !resp.AlreadyApplied || len(writes(b.sim)) != 0 {
			t.Fatalf("Execute = %+v, %v, writes %v; want succeeded as already applied, no write", resp, err, writes(b.sim))
		}
	})
}

func TestReadBackMismatchFailsThatEnvironment(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	old := b.pem
	b.sim.StaleEnvironment("MyProject", "staging", true)
	fresh := testPEM(t)
	resp, err := b.client.Execute(context.Background(), certificateApply("my-certificate", fresh), Call{})
	if err != nil || resp.Status != jobs.StatusPartial {
		t.Fatalf("Execute = %+v, %v; want partial", resp, err)
	}
	d := resp.Deployment
	if d == nil || d.Success || len(d.EnvironmentResults) != 2 {
		t.Fatalf("deployment = %+v, want a failed report of two environments", d)
	}
	for _, e := range d.EnvironmentResults {
		wantOK := e.EnvironmentName == "production"
		if e.Success != wantOK || (!wantOK && !strings.Contains(e.Message, "read back: serves "+thumbprintOf(t, old))) {
			t.Errorf("environment %+v; want production succeeded and staging failed by its read-back", e)
		}
	}
	if resp.Live[1].SHA1Thumbprint != thumbprintOf(t, old) || resp.Live[0].SHA1Thumbprint != thumbprintOf(t, fresh) {
		t.Errorf("live = %+v; want production on the new certificate, staging on the old", resp.Live)
	}
}

func TestUnknownEnvironmentsWriteNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	resp, err := b.client.Execute(context.Background(), certificateApply("new-certificate", b.pem, "production", "qa"), Call{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeUnknownEnvironment || class(err) != "permanent" || !strings.Contains(err.Error(), `"qa"`) {
		t.Fatalf("Execute = %+v, %v; want a permanent unknown_environment naming qa", resp, err)
	}
	if w := writes(b.sim); len(w) != 0 {
		t.Errorf("writes = %v, want none", w)
	}

	// A new environment is seen at once, despite the cache; a known one
	// is not read again.
	b.sim.AddProject("MyProject", "production", "staging", "qa")
	for _, name := range []string{"first", "second"} {
		if _, err := b.client.Execute(context.Background(), certificateApply(name, b.pem, "production", "qa"), Call{}); err != nil {
			t.Fatalf("apply %s after qa was added: %v", name, err)
		}
	}
	reads := 0
	for _, r := range b.sim.Requests() {
		if r.Path == "/apiops/projects/MyProject/environments/" {
			reads++
		}
	}
	if reads != 2 {
		t.Errorf("environments read %d times, want 2 (the refusal, then once for both applies)", reads)
	}
}

func TestApplyWithALostAnswerWritesOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, method, cert string }{
		{"a create", http.MethodPost, "new-certificate"},
		{"an update", http.MethodPut, "my-certificate"},
	} {
		t.Run(c.name+" whose answer is lost ends succeeded within the call", func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			pemText := testPEM(t)
			b.sim.AddFault(apinizertest.Fault{Method: c.method, LoseAnswer: true, Times: 1})
			resp, err := b.client.Execute(context.Background(), certificateApply(c.cert, pemText), Call{})
			if err != nil || resp.Status != jobs.StatusSucceeded {
				t.Fatalf("Execute = %+v, %v; want succeeded", resp, err)
			}
			if n := b.sim.Applied()["certificate/MyProject/"+c.cert]; n != 1 {
				t.Errorf("applied %d times, want 1", n)
			}
			checkLive(t, resp.Live, pemText, "production", "staging")
		})
		t.Run(c.name+" whose answer is lost ends unchanged on the redelivery", func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(cfg *Config) { cfg.Retry.MaxAttempts = 1 })
			pemText := testPEM(t)
			b.sim.AddFault(apinizertest.Fault{Method: c.method, LoseAnswer: true, Times: 1})
			job := certificateApply(c.cert, pemText)
			first, err := b.client.Execute(context.Background(), job, Call{})
			if class(err) != "retryable" || first.Attempts != 1 {
				t.Fatalf("first delivery = %+v, %v; want a retryable failure after one attempt", first, err)
			}
			resp, err := b.client.Execute(context.Background(), job, Call{PriorAttempts: first.Attempts})
			if err != nil || resp.Status != jobs.StatusUnchanged {
				t.Fatalf("redelivery = %+v, %v; want unchanged", resp, err)
			}
			if n := b.sim.Applied()["certificate/MyProject/"+c.cert]; n != 1 {
				t.Errorf("applied %d times, want 1", n)
			}
		})
	}
}

func TestReadBackWritesAddsLiveToCreateAndUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t, func(cfg *Config) { cfg.ReadBackWrites = true })
	fresh := testPEM(t)
	resp, err := b.client.Execute(context.Background(), certificateUpdate(fresh), Call{})
	if err != nil || resp.Status != jobs.StatusSucceeded {
		t.Fatalf("Execute = %+v, %v; want succeeded", resp, err)
	}
	checkLive(t, resp.Live, fresh, "production", "staging")
	resp, err = b.client.Execute(context.Background(), certificateCreate("new-certificate", fresh), Call{})
	if err != nil || resp.Status != jobs.StatusSucceeded {
		t.Fatalf("Execute = %+v, %v; want succeeded", resp, err)
	}
	checkLive(t, resp.Live, fresh, "production", "staging")
}
