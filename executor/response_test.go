package executor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestParseResponse(t *testing.T) {
	t.Parallel()
	okEnv := func(env, msg string) jobs.EnvironmentResult {
		return jobs.EnvironmentResult{EnvironmentName: env, Success: true, Message: msg}
	}
	tests := []struct {
		name      string
		status    int
		header    http.Header
		body      string
		want      Response
		wantClass string
		wantErr   *APIError
	}{
		{
			name:   "a classic success with environmentResults succeeds",
			status: 200,
			body: `{"success": true, "deploymentResult": {"success": true, "message": "Deployment completed successfully",
				"environmentResults": [{"environmentName": "production", "success": true, "message": "Deployed successfully"},
				{"environmentName": "staging", "success": true, "message": "Deployed successfully"}]}}`,
			want: Response{Status: jobs.StatusSucceeded, Deployment: &jobs.DeploymentResult{
				Success: true, Message: "Deployment completed successfully",
				EnvironmentResults: []jobs.EnvironmentResult{okEnv("production", "Deployed successfully"), okEnv("staging", "Deployed successfully")},
			}},
			wantClass: "none",
		},
		{
			name:   "a status SUCCESS wrapper with a detailList folds pods into environments",
			status: 200,
			body: `{"status": "SUCCESS", "deploymentResult": {"success": true, "message": "ok", "detailList": [
				{"envName": "production", "podName": "p0", "podIp": "10.0.0.1", "success": true, "detail": "Deployed", "responseTime": 12},
				{"envName": "staging", "podName": "s0", "podIp": "10.0.1.1", "success": true, "detail": "Deployed", "responseTime": 10},
				{"envName": "production", "podName": "p1", "podIp": "10.0.0.2", "success": true, "detail": "Deployed again", "responseTime": 13}]}}`,
			want: Response{Status: jobs.StatusSucceeded, Deployment: &jobs.DeploymentResult{
				Success: true, Message: "ok",
				EnvironmentResults: []jobs.EnvironmentResult{
					withPods(okEnv("production", "Deployed"),
						jobs.PodResult{PodName: "p0", PodIP: "10.0.0.1", Success: true, Detail: "Deployed", ResponseTime: 12},
						jobs.PodResult{PodName: "p1", PodIP: "10.0.0.2", Success: true, Detail: "Deployed again", ResponseTime: 13}),
					withPods(okEnv("staging", "Deployed"),
						jobs.PodResult{PodName: "s0", PodIP: "10.0.1.1", Success: true, Detail: "Deployed", ResponseTime: 10}),
				},
			}},
			wantClass: "none",
		},
		{
			name:   "one failed pod makes its environment fail and the call partial",
			status: 200,
			body: `{"status": "SUCCESS", "deploymentResult": {"success": true, "message": "done", "detailList": [
				{"envName": "production", "podName": "p0", "success": true, "detail": "Deployed"},
				{"envName": "production", "podName": "p1", "success": false, "detail": "timeout"},
				{"envName": "production", "podName": "p2", "success": false, "detail": "refused"},
				{"envName": "staging", "podName": "s0", "success": true, "detail": "Deployed"}]}}`,
			want: Response{Status: jobs.StatusPartial, Deployment: &jobs.DeploymentResult{
				Success: false, Message: "done",
				EnvironmentResults: []jobs.EnvironmentResult{
					{EnvironmentName: "production", Success: false, Message: "p1: timeout; p2: refused", Pods: []jobs.PodResult{
						{PodName: "p0", Success: true, Detail: "Deployed"},
						{PodName: "p1", Success: false, Detail: "timeout"},
						{PodName: "p2", Success: false, Detail: "refused"},
					}},
					withPods(okEnv("staging", "Deployed"), jobs.PodResult{PodName: "s0", Success: true, Detail: "Deployed"}),
				},
			}},
			wantClass: "none",
		},
		{
			name:   "a failed environment entry makes the call partial even if the report claims success",
			status: 200,
			body: `{"success": true, "deploymentResult": {"success": true, "message": "m", "environmentResults": [
				{"environmentName": "production", "success": false, "message": "gateway down"}]}}`,
			want: Response{Status: jobs.StatusPartial, Deployment: &jobs.DeploymentResult{
				Success: false, Message: "m",
				EnvironmentResults: []jobs.EnvironmentResult{{EnvironmentName: "production", Success: false, Message: "gateway down"}},
			}},
			wantClass: "none",
		},
		{
			name:   "a report that says success false is partial even with good entries",
			status: 200,
			body:   `{"success": true, "deploymentResult": {"success": false, "message": "some failed", "environmentResults": []}}`,
			want: Response{Status: jobs.StatusPartial, Deployment: &jobs.DeploymentResult{
				Success: false, Message: "some failed", EnvironmentResults: []jobs.EnvironmentResult{},
			}},
			wantClass: "none",
		},
		{
			name:      "a success without a deployment report succeeds",
			status:    200,
			body:      `{"success": true}`,
			want:      Response{Status: jobs.StatusSucceeded},
			wantClass: "none",
		},
		{
			name:      "a 200 that says success false is a permanent failure",
			status:    200,
			body:      `{"success": false, "error": "bad_request", "error_description": "Certificate is invalid"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 200, Code: "bad_request", Message: "Certificate is invalid"},
		},
		{
			name:      "a 200 with status FAILURE is a permanent failure",
			status:    200,
			body:      `{"status": "FAILURE", "resultMessage": "No permission"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 200, Code: "FAILURE", Message: "No permission"},
		},
		{
			name:      "an unparseable 200 is a permanent invalid_response",
			status:    200,
			body:      `<html>OK</html>`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 200, Code: "invalid_response", Message: "unparseable success body: OK"},
		},
		{
			name:      "a 200 without any success flag is a permanent invalid_response",
			status:    200,
			body:      `{}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 200, Code: "invalid_response", Message: "success body without success flag: {}"},
		},
		{
			name:      "a 400 not found is permanent with Apinizer's code and description",
			status:    400,
			body:      `{"error": "bad_request", "error_description": "Certificate (name: my-certificate) is not found!"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 400, Code: "bad_request", Message: "Certificate (name: my-certificate) is not found!"},
		},
		{
			name:      "a 401 invalid token is permanent",
			status:    401,
			body:      `{"error": "unauthorized_client", "error_description": "Invalid token"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 401, Code: "unauthorized_client", Message: "Invalid token"},
		},
		{
			name:      "a 404 project not found is permanent",
			status:    404,
			body:      `{"error": "not_found", "error_description": "Project(MyProject) was not found or user does not have privilege to access it!"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 404, Code: "not_found", Message: "Project(MyProject) was not found or user does not have privilege to access it!"},
		},
		{
			name:      "a 400 FAILURE body is permanent with code FAILURE",
			status:    400,
			body:      `{"status": "FAILURE", "resultMessage": "Credential (username: api-user) was not found!"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 400, Code: "FAILURE", Message: "Credential (username: api-user) was not found!"},
		},
		{
			name:      "a 403 is permanent",
			status:    403,
			body:      `{"error": "access_denied", "error_description": "no"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 403, Code: "access_denied", Message: "no"},
		},
		{
			name:      "a 409 is permanent",
			status:    409,
			body:      `{"error": "conflict", "error_description": "busy"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 409, Code: "conflict", Message: "busy"},
		},
		{
			name:      "a 422 is permanent",
			status:    422,
			body:      `{"error": "unprocessable", "error_description": "bad pem"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 422, Code: "unprocessable", Message: "bad pem"},
		},
		{
			name:      "a 408 is retryable",
			status:    408,
			body:      ``,
			wantClass: "retryable",
			wantErr:   &APIError{StatusCode: 408, Code: "http_408", Message: "Request Timeout"},
		},
		{
			name:      "a 429 is retryable and carries Retry-After",
			status:    429,
			header:    http.Header{"Retry-After": {"7"}},
			body:      `{"error": "too_many_requests", "error_description": "slow down"}`,
			wantClass: "retryable",
			wantErr:   &APIError{StatusCode: 429, Code: "too_many_requests", Message: "slow down", RetryAfter: 7 * time.Second},
		},
		{
			name:      "a 500 FAILURE body is retryable",
			status:    500,
			body:      `{"status": "FAILURE", "resultMessage": "NullPointerException"}`,
			wantClass: "retryable",
			wantErr:   &APIError{StatusCode: 500, Code: "FAILURE", Message: "NullPointerException"},
		},
		{
			name:      "a proxy's HTML 502 page is retryable with its text as message",
			status:    502,
			body:      "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>",
			wantClass: "retryable",
			wantErr:   &APIError{StatusCode: 502, Code: "http_502", Message: "502 Bad Gateway 502 Bad Gateway nginx"},
		},
		{
			name:      "an empty 503 is retryable with Retry-After",
			status:    503,
			header:    http.Header{"Retry-After": {"2"}},
			wantClass: "retryable",
			wantErr:   &APIError{StatusCode: 503, Code: "http_503", Message: "Service Unavailable", RetryAfter: 2 * time.Second},
		},
		{
			name:      "Retry-After on a 500 is ignored",
			status:    500,
			header:    http.Header{"Retry-After": {"2"}},
			wantClass: "retryable",
			wantErr:   &APIError{StatusCode: 500, Code: "http_500", Message: "Internal Server Error"},
		},
		{
			name:      "a framework 404 with a numeric status keeps its error text",
			status:    404,
			body:      `{"timestamp": "2026-11-23T10:00:00Z", "status": 404, "error": "Not Found", "path": "/apiops/x"}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 404, Code: "Not Found", Message: "Not Found"},
		},
		{
			name:      "JSON without error fields is reported by status",
			status:    418,
			body:      `{"foo": 1}`,
			wantClass: "permanent",
			wantErr:   &APIError{StatusCode: 418, Code: "http_418", Message: `{"foo": 1}`},
		},
		{
			name:      "a plain text body is cut to 200 bytes without control characters",
			status:    504,
			body:      "gateway\x00timeout\n" + strings.Repeat("x", 300),
			wantClass: "retryable",
			wantErr:   &APIError{StatusCode: 504, Code: "http_504", Message: ("gateway timeout " + strings.Repeat("x", 300))[:200]},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := tt.header
			if header == nil {
				header = http.Header{}
			}
			got, err := parseResponse(tt.status, header, []byte(tt.body))
			if c := class(err); c != tt.wantClass {
				t.Fatalf("class = %s (%v), want %s", c, err, tt.wantClass)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				return
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if diff := cmp.Diff(tt.wantErr, apiErr); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
		})
	}
}

// withPods is env with its pod reports.
func withPods(env jobs.EnvironmentResult, pods ...jobs.PodResult) jobs.EnvironmentResult {
	env.Pods = pods
	return env
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, header string
		want         time.Duration
	}{
		{"delta-seconds are read as seconds", "120", 2 * time.Minute},
		{"an HTTP-date is read relative to now", "Mon, 23 Nov 2026 10:00:30 GMT", 30 * time.Second},
		{"a date in the past means no wait", "Mon, 23 Nov 2026 09:00:00 GMT", 0},
		{"zero means no wait", "0", 0},
		{"a negative number means no wait", "-5", 0},
		{"garbage means no wait", "soon", 0},
		{"an absent header means no wait", "", 0},
		{"a huge number is capped instead of overflowing", "99999999999999999", 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retryAfter(tt.header, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %s, want %s", tt.header, got, tt.want)
			}
		})
	}
}

func TestResourceGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kind    jobs.Kind
		message string
		want    bool
	}{
		{"a missing certificate is gone", jobs.KindCertificate, "Certificate (name: my-certificate) is not found!", true},
		{"a missing key is gone", jobs.KindKey, "Key (name: my-key) is not found!", true},
		{"a missing credential is gone", jobs.KindCredential, "Credential (username: api-user) was not found!", true},
		{"case and spacing do not matter", jobs.KindCertificate, "  certificate(name: x) was NOT FOUND", true},
		{"a missing project is not the resource", jobs.KindCertificate, "Project(MyProject) was not found or user does not have privilege to access it!", false},
		{"a name that mentions a project still counts", jobs.KindCredential, "Credential (username: project-bot) was not found!", true},
		{"another kind's message does not count", jobs.KindKey, "Certificate (name: my-key) is not found!", false},
		{"a word that merely starts with the noun does not count", jobs.KindKey, "Keystore (name: k) is not found!", false},
		{"an already-exists message does not count", jobs.KindCertificate, "Certificate (name: c) already exists!", false},
		{"a permission message does not count", jobs.KindCredential, "User does not have privilege", false},
		{"an empty message does not count", jobs.KindKey, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := resourceGone(tt.kind, tt.message); got != tt.want {
				t.Errorf("resourceGone(%s, %q) = %v, want %v", tt.kind, tt.message, got, tt.want)
			}
		})
	}
}

func TestAlreadyGoneByStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *APIError
		want bool
	}{
		{"a 404 saying the key is not found is gone", &APIError{StatusCode: 404, Code: "not_found", Message: "Key (name: k) is not found!"}, true},
		{"a 400 saying the key is not found is gone", &APIError{StatusCode: 400, Message: "Key (name: k) is not found!"}, true},
		{"another 400 is not", &APIError{StatusCode: 400, Message: "alias is required!"}, false},
		{"a 500 saying not found is not", &APIError{StatusCode: 500, Message: "Key (name: k) is not found!"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := &request{kind: jobs.KindKey, delete: true}
			_, got, err := (&Client{}).settle(context.Background(), &jobs.KeyDelete{}, req, true, tt.err)
			if err != nil || got != tt.want {
				t.Errorf("settle(key delete, %v) = %v, %v; want %v, nil", tt.err, got, err, tt.want)
			}
		})
	}
}

func BenchmarkParseResponse(b *testing.B) {
	body := []byte(`{"status": "SUCCESS", "deploymentResult": {"success": true, "message": "Deployment completed successfully", "detailList": [
		{"envName": "production", "podName": "production-gateway-0", "podIp": "10.0.0.10", "success": true, "detail": "Deployed successfully", "responseTime": 12},
		{"envName": "production", "podName": "production-gateway-1", "podIp": "10.0.0.11", "success": true, "detail": "Deployed successfully", "responseTime": 13},
		{"envName": "staging", "podName": "staging-gateway-0", "podIp": "10.0.1.10", "success": false, "detail": "Deployment failed", "responseTime": 12},
		{"envName": "staging", "podName": "staging-gateway-1", "podIp": "10.0.1.11", "success": true, "detail": "Deployed successfully", "responseTime": 13}]}}`)
	header := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseResponse(200, header, body); err != nil {
			b.Fatal(err)
		}
	}
}
