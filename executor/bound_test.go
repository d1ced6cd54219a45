package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// resultOf is the result the worker builds from what Execute returned,
// before jobs.Bound: how large an echo makes it on its own.
func resultOf(job jobs.Job, resp Response, err error) jobs.Result {
	r := jobs.Result{JobID: job.ID(), Subject: job.Subject(), Status: resp.Status, Attempts: resp.Attempts, DeploymentResult: resp.Deployment}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		r.Status = jobs.StatusFailed
		r.Error = &jobs.ResultError{Code: apiErr.StableCode(), ApinizerError: apiErr.Code, Message: apiErr.Message, HTTPStatus: apiErr.StatusCode}
	}
	return r
}

// errorCode is r's error code, "" for none.
func errorCode(r jobs.Result) string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// messages lists every message of r.
func messages(r jobs.Result) []string {
	var out []string
	if r.Error != nil {
		out = append(out, r.Error.Message)
	}
	if d := r.DeploymentResult; d != nil {
		out = append(out, d.Message)
		for _, e := range d.EnvironmentResults {
			out = append(out, e.Message)
			for _, p := range e.Pods {
				out = append(out, p.Detail)
			}
		}
	}
	return out
}

func TestAHugeApinizerMessageGivesASmallResult(t *testing.T) {
	t.Parallel()
	// Just under the 1 MiB the executor reads, once the body around it is
	// added.
	huge := strings.Repeat("xé", (1<<20-8<<10)/3)
	missingKey := &jobs.KeyDelete{JobID: "j-missing", ProjectName: "MyProject", KeyName: "no-such-key"}
	tests := []struct {
		name    string
		style   apinizertest.ResponseStyle
		fault   apinizertest.Fault
		job     func(pem string) jobs.Job
		applied bool
		// wantCode is the stable code of the failure, "" for a success.
		wantCode string
	}{
		{"a 2xx success whose deployment message is 1 MiB, older revision", apinizertest.StyleClassic,
			apinizertest.Fault{Message: huge}, func(p string) jobs.Job { return certificateUpdate(p) }, true, ""},
		{"a 2xx success whose deployment message is 1 MiB, current revision", apinizertest.StyleCurrent,
			apinizertest.Fault{Message: huge}, func(p string) jobs.Job { return certificateUpdate(p) }, true, ""},
		{"a 4xx refusal whose message is 1 MiB, older revision", apinizertest.StyleClassic,
			apinizertest.Fault{Message: huge}, func(string) jobs.Job { return missingKey }, false, CodeBadRequest},
		{"a 4xx refusal whose message is 1 MiB, current revision", apinizertest.StyleCurrent,
			apinizertest.Fault{Message: huge}, func(string) jobs.Job { return missingKey }, false, CodeBadRequest},
		{"a 2xx body of 1 MiB of environment results", apinizertest.StyleClassic,
			apinizertest.Fault{Reply: &apinizertest.Reply{Status: 200, Body: manyEnvironmentsBody(4000, strings.Repeat("x", 200))}},
			func(string) jobs.Job {
				return &jobs.KeyDelete{JobID: "j-envs", ProjectName: "MyProject", KeyName: "my-key"}
			}, false, ""},
		{"a 2xx body of 2 MiB, more than is read", apinizertest.StyleClassic,
			apinizertest.Fault{Reply: &apinizertest.Reply{Status: 200, Body: `{"success":true,"deploymentResult":{"message":"` + huge + huge + `"}}`}},
			func(p string) jobs.Job { return certificateUpdate(p) }, false, CodeInvalidResponse},
		{"a 4xx HTML page of 1 MiB", apinizertest.StyleClassic,
			apinizertest.Fault{Reply: &apinizertest.Reply{Status: 400, ContentType: "text/html", Body: "<html><body>" + huge + "</body></html>"}},
			func(p string) jobs.Job { return certificateUpdate(p) }, false, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name+" gives a result under 64 KiB", func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(tt.style)
			tt.fault.Times = 1
			b.sim.AddFault(tt.fault)
			job := tt.job(b.pem)
			resp, err := b.client.Execute(context.Background(), job, Call{})
			if resp.Attempts != 1 || (err == nil) != (resp.Status != "") {
				t.Fatalf("Execute = %+v, %v; want one attempt with an answer", resp, err)
			}
			r := resultOf(job, resp, err)
			if got := errorCode(r); got != tt.wantCode {
				t.Errorf("error code %q (%v), want %q", got, err, tt.wantCode)
			}
			enc, _ := json.Marshal(r)
			if len(enc) >= jobs.MaxResultSize {
				t.Errorf("the result is %d bytes, want under %d", len(enc), jobs.MaxResultSize)
			}
			for _, m := range messages(r) {
				if len(m) > jobs.MaxMessageSize {
					t.Errorf("a message of %d bytes, want at most %d", len(m), jobs.MaxMessageSize)
				}
			}
			if n := b.sim.Applied()["certificate/MyProject/my-certificate"]; tt.applied && n != 1 {
				t.Errorf("applied %d times, want 1", n)
			}
		})
	}
}

func TestAHugeMessageIsCutAndMarked(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.sim.AddFault(apinizertest.Fault{Times: 1, Message: strings.Repeat("x", 100<<10)})
	resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
	if err != nil {
		t.Fatal(err)
	}
	m := resp.Deployment.Message
	if len(m) != jobs.MaxMessageSize || !strings.HasSuffix(m, jobs.CutMark) || !strings.HasPrefix(m, "xxx") {
		t.Errorf("message of %d bytes ending %q, want %d bytes of the text ending %q", len(m), m[max(len(m)-12, 0):], jobs.MaxMessageSize, jobs.CutMark)
	}
}

// manyEnvironmentsBody is an older-revision success reporting n
// environments, env-0000 to env-<n-1>, every one failed with message.
func manyEnvironmentsBody(n int, message string) string {
	envs := make([]map[string]any, n)
	for i := range envs {
		envs[i] = map[string]any{"environmentName": fmt.Sprintf("env-%04d", i), "success": false, "message": message}
	}
	b, _ := json.Marshal(map[string]any{"success": true, "deploymentResult": map[string]any{"success": false, "message": "m", "environmentResults": envs}})
	return string(b)
}

func TestEnvironmentsTheJobDidNotNameAreDropped(t *testing.T) {
	t.Parallel()
	const body = `{"success":true,"deploymentResult":{"success":false,"message":"Deployment completed with errors","environmentResults":[` +
		`{"environmentName":"production","success":true,"message":"ok"},` +
		`{"environmentName":"evil\u0000label","success":false,"message":"made up"},` +
		`{"environmentName":"staging","success":true,"message":"ok"},` +
		`{"environmentName":"not-asked","success":true,"message":"ok"}]}}`
	b := setup(t, nil)
	b.sim.AddFault(apinizertest.Fault{Method: http.MethodPut, Reply: &apinizertest.Reply{Status: 200, Body: body}})
	resp, err := b.client.Execute(context.Background(), certificateUpdate(b.pem), Call{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range resp.Deployment.EnvironmentResults {
		names = append(names, e.EnvironmentName)
	}
	if strings.Join(names, ",") != "production,staging" {
		t.Errorf("environments kept %q, want the job's production and staging", names)
	}
	if resp.Status != jobs.StatusPartial || !strings.Contains(resp.Deployment.Message, "[2 results for environments the job did not name dropped, 1 of them failed]") {
		t.Errorf("Execute = %s, %q; want partial, with the dropped results counted in the message", resp.Status, resp.Deployment.Message)
	}

	t.Run("a job without environments keeps at most 64", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.sim.AddFault(apinizertest.Fault{Reply: &apinizertest.Reply{Status: 200, Body: manyEnvironmentsBody(100, "failed")}})
		resp, err := b.client.Execute(context.Background(), &jobs.KeyDelete{JobID: "j", ProjectName: "MyProject", KeyName: "my-key"}, Call{})
		if err != nil {
			t.Fatal(err)
		}
		envs := resp.Deployment.EnvironmentResults
		if len(envs) != jobs.MaxEnvironments || envs[0].EnvironmentName != "env-0000" || envs[63].EnvironmentName != "env-0063" {
			t.Errorf("kept %d environments, want the first %d", len(envs), jobs.MaxEnvironments)
		}
	})
}
