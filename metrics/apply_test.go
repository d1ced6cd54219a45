package metrics_test

import (
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

	compare(t, reg, `apiops_environment_deployment_failures_total{environment="staging",operation="certificate.apply"} 1
`, "apiops_environment_deployment_failures_total")
	compare(t, reg, `apiops_jobs_finished_total{operation="certificate.apply",status="partial"} 1
apiops_jobs_finished_total{operation="certificate.apply",status="unchanged"} 1
`, "apiops_jobs_finished_total")
	// Only the partial job's two environments: the unchanged one deployed
	// nothing.
	if n, err := testutil.GatherAndCount(reg, "apiops_environment_deployments_total"); err != nil || n != 2 {
		t.Errorf("environment_deployments_total has %d series (%v), want 2", n, err)
	}
}
