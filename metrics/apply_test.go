package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// TestApplyOutcomesAreCountedLikeOthers: an unchanged apply (a write
// avoided) is a status of jobs_finished_total, with no environment
// outcomes as nothing was deployed, and an environment failed by its
// read-back is a deployment failure.
func TestApplyOutcomesAreCountedLikeOthers(t *testing.T) {
	t.Parallel()
	m, reg := setup(t)
	m.JobFinished(jobs.Result{JobID: "a1", Subject: jobs.SubjectCertificateApply, Status: jobs.StatusUnchanged,
		Live: []jobs.LiveCertificate{{EnvironmentName: "production", SHA1Thumbprint: "AB"}}}, time.Millisecond)
	m.JobFinished(jobs.Result{JobID: "a2", Subject: jobs.SubjectCertificateApply, Status: jobs.StatusPartial,
		DeploymentResult: envs(
			jobs.EnvironmentResult{EnvironmentName: "production", Success: true},
			jobs.EnvironmentResult{EnvironmentName: "staging", Success: false, Message: "read back: serves AB, not the uploaded CD"},
		)}, time.Millisecond)

	want := `# HELP apiops_environment_deployment_failures_total Per-environment deployment failures reported by Apinizer, including those of partial jobs.
# TYPE apiops_environment_deployment_failures_total counter
apiops_environment_deployment_failures_total{environment="staging",operation="certificate.apply"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "apiops_environment_deployment_failures_total"); err != nil {
		t.Error(err)
	}
	for status, n := range map[string]float64{"unchanged": 1, "partial": 1} {
		got := 0.0
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "apiops_jobs_finished_total" {
				continue
			}
			for _, s := range mf.GetMetric() {
				labels := map[string]string{}
				for _, lp := range s.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				if labels["operation"] == "certificate.apply" && labels["status"] == status {
					got = s.GetCounter().GetValue()
				}
			}
		}
		if got != n {
			t.Errorf("jobs_finished_total{certificate.apply, %s} = %v, want %v", status, got, n)
		}
	}
	// Only the partial job's two environments: the unchanged one deployed
	// nothing.
	if n, err := testutil.GatherAndCount(reg, "apiops_environment_deployments_total"); err != nil || n != 2 {
		t.Errorf("environment_deployments_total has %d series (%v), want 2", n, err)
	}
}
