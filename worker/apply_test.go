package worker_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// applyCase is one certificate.apply published to a worker, in a project
// of its own so that its faults and stale environments touch no other case.
type applyCase struct {
	name string
	// seeded puts the certificate "rotated" in the project first, serving
	// a PEM of its own (live) in both environments.
	seeded bool
	// arrange prepares the case's project and returns the job.
	arrange func(t *testing.T, b *bundle, project, live string) *jobs.CertificateApply
	status  jobs.Status
	code    string         // error.code of a failed job
	writes  map[string]int // write requests by method
	check   func(t *testing.T, b *bundle, r jobs.Result)
}

func newApply(b *bundle, project, id, pemText string, envs ...string) *jobs.CertificateApply {
	f := b.certFields()
	f.PEMEncodedFile = pemText
	if len(envs) > 0 {
		f.EnvironmentList = envs
	}
	return &jobs.CertificateApply{CertificateUpdate: jobs.CertificateUpdate{
		JobID: id, ProjectName: project, CertificateName: "rotated", CertificateFields: f, JWKUpdateAction: jobs.JWKUpdateUpdate,
	}}
}

// TestApplyEndToEnd runs the must-show lines through a real worker
// and JetStream: each job's writes, its result and the metrics.
func TestApplyEndToEnd(t *testing.T) {
	t.Parallel()
	cases := []applyCase{
		{name: "apply on a missing certificate makes one POST",
			arrange: func(t *testing.T, b *bundle, p, _ string) *jobs.CertificateApply {
				return newApply(b, p, "missing", newPEM(t))
			},
			status: jobs.StatusSucceeded, writes: map[string]int{http.MethodPost: 1}},
		{name: "apply with the PEM already live and a new job id makes no write and ends unchanged", seeded: true,
			arrange: func(t *testing.T, b *bundle, p, live string) *jobs.CertificateApply {
				return newApply(b, p, "same-pem", live)
			},
			status: jobs.StatusUnchanged, writes: map[string]int{}},
		{name: "apply with a new PEM makes one PUT", seeded: true,
			arrange: func(t *testing.T, b *bundle, p, _ string) *jobs.CertificateApply {
				return newApply(b, p, "new-pem", newPEM(t))
			},
			status: jobs.StatusSucceeded, writes: map[string]int{http.MethodPut: 1}},
		{name: "a precondition mismatch makes no write and fails precondition_failed", seeded: true,
			arrange: func(t *testing.T, b *bundle, p, live string) *jobs.CertificateApply {
				b.sim.ReplaceCertificate(p, "rotated", "staging", newPEM(t))
				j := newApply(b, p, "precondition", newPEM(t))
				j.ExpectedThumbprint = mustThumbprint(t, live)
				return j
			},
			status: jobs.StatusFailed, code: executor.CodePreconditionFailed, writes: map[string]int{}},
		{name: "a read-back mismatch fails that environment", seeded: true,
			arrange: func(t *testing.T, b *bundle, p, _ string) *jobs.CertificateApply {
				b.sim.StaleEnvironment(p, "staging", true)
				return newApply(b, p, "read-back", newPEM(t))
			},
			status: jobs.StatusPartial, writes: map[string]int{http.MethodPut: 1},
			check: func(t *testing.T, _ *bundle, r jobs.Result) {
				d := r.DeploymentResult
				if d == nil || d.Success || len(d.EnvironmentResults) != 2 || d.EnvironmentResults[1].Success ||
					!strings.Contains(d.EnvironmentResults[1].Message, "read back") || !d.EnvironmentResults[0].Success {
					t.Errorf("deployment %s; want staging failed by its read-back and production succeeded", mustJSON(t, d))
				}
			}},
		{name: "an unknown environment makes no write and fails unknown_environment",
			arrange: func(t *testing.T, b *bundle, p, _ string) *jobs.CertificateApply {
				return newApply(b, p, "unknown-env", newPEM(t), "production", "qa")
			},
			status: jobs.StatusFailed, code: executor.CodeUnknownEnvironment, writes: map[string]int{}},
		{name: "a create whose answer is lost ends with one write",
			arrange: func(t *testing.T, b *bundle, p, _ string) *jobs.CertificateApply {
				b.sim.AddFault(apinizertest.Fault{Method: http.MethodPost, PathPrefix: "/apiops/projects/" + p + "/", LoseAnswer: true, Times: 1})
				return newApply(b, p, "lost-answer", newPEM(t))
			},
			// The retried POST is refused "already exists" and settled by
			// reading the certificate back: one change in all.
			status: jobs.StatusSucceeded, writes: map[string]int{http.MethodPost: 2},
			check: func(t *testing.T, b *bundle, r jobs.Result) {
				if n := b.sim.Applied()["certificate/"+r.ProjectName+"/rotated"]; n != 1 {
					t.Errorf("applied %d times, want 1", n)
				}
			}},
	}

	b := setup(t)
	res := b.watchResults(t)
	want := map[string]applyCase{}
	for i, c := range cases {
		project := "Apply" + string(rune('A'+i))
		b.sim.AddProject(project, "production", "staging")
		live := ""
		if c.seeded {
			live = newPEM(t)
			b.sim.AddCertificate(project, "rotated", live)
		}
		j := c.arrange(t, b, project, live)
		want[j.JobID] = c
		b.publish(t, j)
	}
	_, reg := b.startWorker(t, workerOpts{})
	got := res.next(t, len(cases), 30*time.Second)

	for id, c := range want {
		t.Run(c.name, func(t *testing.T) {
			r := got[id]
			code := ""
			if r.Error != nil {
				code = r.Error.Code
			}
			if r.Status != c.status || code != c.code {
				t.Fatalf("result %s; want status %s, code %q", mustJSON(t, r), c.status, c.code)
			}
			if w := applyWrites(b.sim, r.ProjectName); !mapsEqual(w, c.writes) {
				t.Errorf("writes %v, want %v", w, c.writes)
			}
			if c.check != nil {
				c.check(t, b, r)
			}
		})
	}
	if v := labelled(t, reg, "apiops_jobs_finished_total", map[string]string{"operation": "certificate.apply", "status": "unchanged"}); v != 1 {
		t.Errorf("jobs_finished_total{certificate.apply, unchanged} = %v, want 1", v)
	}
	if v := labelled(t, reg, "apiops_environment_deployment_failures_total", map[string]string{"operation": "certificate.apply", "environment": "staging"}); v != 1 {
		t.Errorf("environment_deployment_failures_total{certificate.apply, staging} = %v, want 1 (the read-back mismatch)", v)
	}
}

// applyWrites counts the write requests the simulator received for a
// project, by method.
func applyWrites(sim *apinizertest.Server, project string) map[string]int {
	n := map[string]int{}
	for _, r := range sim.Requests() {
		if r.Method != http.MethodGet && strings.HasPrefix(r.Path, "/apiops/projects/"+project+"/") {
			n[r.Method]++
		}
	}
	return n
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func mustThumbprint(t *testing.T, pemText string) string {
	t.Helper()
	th, err := jobs.Thumbprint(pemText)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// labelled reads the series of a counter with exactly labels, 0 if none.
func labelled(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestApplyResultsCarryLive checks the live table of results.
func TestApplyResultsCarryLive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.watchResults(t)
	j := newApply(b, project, "live", b.pem)
	b.publish(t, j)
	b.startWorker(t, workerOpts{})
	r := res.next(t, 1, 30*time.Second)["live"]
	want := mustThumbprint(t, b.pem)
	if r.Status != jobs.StatusSucceeded || len(r.Live) != 2 {
		t.Fatalf("result %s; want succeeded with two live entries", mustJSON(t, r))
	}
	for i, l := range r.Live {
		if l.EnvironmentName != j.EnvironmentList[i] || l.SHA1Thumbprint != want || l.SubjectDN == "" || l.NotAfter.Before(time.Now()) {
			t.Errorf("live[%d] = %+v; want %s serving %s", i, l, j.EnvironmentList[i], want)
		}
	}
}
