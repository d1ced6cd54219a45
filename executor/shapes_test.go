package executor

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// TestParseDocumentedSuccessShapes reads every deployment report shape that
// Apinizer's pages show, in the older revision (shared/seeds) and the current
// one (shared/apinizer-docs), as the pages print them.
func TestParseDocumentedSuccessShapes(t *testing.T) {
	t.Parallel()
	ok := func(env, msg string) jobs.EnvironmentResult {
		return jobs.EnvironmentResult{EnvironmentName: env, Success: true, Message: msg}
	}
	tests := []struct {
		name string
		body string
		want Response
	}{
		{
			name: "the seeds' success wrapper with environmentResults (every seed page) succeeds",
			body: `{"success": true, "deploymentResult": {"success": true, "message": "Undeployment completed successfully",
				"environmentResults": [{"environmentName": "production", "success": true, "message": "Undeployed successfully"}]}}`,
			want: Response{Status: jobs.StatusSucceeded, Deployment: &jobs.DeploymentResult{
				Success: true, Message: "Undeployment completed successfully",
				EnvironmentResults: []jobs.EnvironmentResult{ok("production", "Undeployed successfully")},
			}},
		},
		{
			name: "the current status SUCCESS wrapper with environmentResults (remove-public-key.mdx) succeeds",
			body: `{"status": "SUCCESS", "deploymentResult": {"success": true, "message": "Deployment completed successfully",
				"environmentResults": [{"environmentName": "production", "success": true, "message": "Deployed successfully"},
				{"environmentName": "staging", "success": true, "message": "Deployed successfully"}]}}`,
			want: Response{Status: jobs.StatusSucceeded, Deployment: &jobs.DeploymentResult{
				Success: true, Message: "Deployment completed successfully",
				EnvironmentResults: []jobs.EnvironmentResult{ok("production", "Deployed successfully"), ok("staging", "Deployed successfully")},
			}},
		},
		{
			name: "the per-pod report whose pods have no detail (delete-credential.mdx) succeeds with pod IPs and response times",
			body: `{"status": "SUCCESS", "deploymentResult": {"success": true, "responseTime": 120, "detailList": [
				{"envName": "production", "podName": "worker-abc123", "podIp": "10.0.0.1", "success": true, "responseTime": 120}]}}`,
			want: Response{Status: jobs.StatusSucceeded, Deployment: &jobs.DeploymentResult{
				Success: true, ResponseTime: 120,
				EnvironmentResults: []jobs.EnvironmentResult{{EnvironmentName: "production", Success: true, Pods: []jobs.PodResult{
					{PodName: "worker-abc123", PodIP: "10.0.0.1", Success: true, ResponseTime: 120},
				}}},
			}},
		},
		{
			name: "a per-pod report with one pod's fields at the top level keeps the top-level detail as the message",
			body: `{"status": "SUCCESS", "deploymentResult": {"envName": "production", "podName": "worker-abc123", "podIp": "10.0.0.1",
				"success": true, "detail": "Deployed", "responseTime": 95, "detailList": [
				{"envName": "production", "podName": "worker-abc123", "podIp": "10.0.0.1", "success": true, "responseTime": 95},
				{"envName": "production", "podName": "worker-def456", "podIp": "10.0.0.2", "success": true, "responseTime": 97}]}}`,
			want: Response{Status: jobs.StatusSucceeded, Deployment: &jobs.DeploymentResult{
				Success: true, Message: "Deployed", ResponseTime: 95,
				EnvironmentResults: []jobs.EnvironmentResult{{EnvironmentName: "production", Success: true, Pods: []jobs.PodResult{
					{PodName: "worker-abc123", PodIP: "10.0.0.1", Success: true, ResponseTime: 95},
					{PodName: "worker-def456", PodIP: "10.0.0.2", Success: true, ResponseTime: 97},
				}}},
			}},
		},
		{
			name: "a top-level pod report with an empty detailList is that pod's report",
			body: `{"status": "SUCCESS", "deploymentResult": {"envName": "staging", "podName": "gw-0", "podIp": "10.0.1.1",
				"success": true, "responseTime": 30, "detailList": []}}`,
			want: Response{Status: jobs.StatusSucceeded, Deployment: &jobs.DeploymentResult{
				Success: true, ResponseTime: 30,
				EnvironmentResults: []jobs.EnvironmentResult{{EnvironmentName: "staging", Success: true, Pods: []jobs.PodResult{
					{PodName: "gw-0", PodIP: "10.0.1.1", Success: true, ResponseTime: 30},
				}}},
			}},
		},
		{
			name: "success false with a detail and an empty detailList fails that environment with the detail as its message",
			body: `{"status": "SUCCESS", "deploymentResult": {"envName": "production", "success": false,
				"detail": "Gateway pods could not be reached", "detailList": []}}`,
			want: Response{Status: jobs.StatusPartial, Deployment: &jobs.DeploymentResult{
				Success: false, Message: "Gateway pods could not be reached",
				EnvironmentResults: []jobs.EnvironmentResult{{EnvironmentName: "production", Success: false,
					Message: "Gateway pods could not be reached", Pods: []jobs.PodResult{
						{Success: false, Detail: "Gateway pods could not be reached"},
					}}},
			}},
		},
		{
			name: "success false with only a detail is partial with the detail as the message",
			body: `{"status": "SUCCESS", "deploymentResult": {"success": false, "detail": "No gateway answered", "detailList": []}}`,
			want: Response{Status: jobs.StatusPartial, Deployment: &jobs.DeploymentResult{
				Success: false, Message: "No gateway answered", EnvironmentResults: []jobs.EnvironmentResult{},
			}},
		},
		{
			name: "a failed pod without detail fails its environment and names the pod",
			body: `{"status": "SUCCESS", "deploymentResult": {"success": true, "detailList": [
				{"envName": "production", "podName": "gw-0", "podIp": "10.0.0.1", "success": true, "responseTime": 12},
				{"envName": "production", "podName": "gw-1", "podIp": "10.0.0.2", "success": false, "detail": "timeout", "responseTime": 5000}]}}`,
			want: Response{Status: jobs.StatusPartial, Deployment: &jobs.DeploymentResult{
				Success: false,
				EnvironmentResults: []jobs.EnvironmentResult{{EnvironmentName: "production", Success: false, Message: "gw-1: timeout", Pods: []jobs.PodResult{
					{PodName: "gw-0", PodIP: "10.0.0.1", Success: true, ResponseTime: 12},
					{PodName: "gw-1", PodIP: "10.0.0.2", Success: false, Detail: "timeout", ResponseTime: 5000},
				}}},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseResponse(http.StatusOK, http.Header{}, []byte(tt.body))
			if err != nil {
				t.Fatalf("parseResponse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}
