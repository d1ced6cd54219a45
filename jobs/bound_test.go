package jobs_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		limit int
		want  string
	}{
		{"a text within the limit is kept", "hello", 5, "hello"},
		{"a longer text is cut and marked", "hello world, hello again", 16, "hello wo" + jobs.CutMark},
		{"a cut never splits a character", "éééééé", len(jobs.CutMark) + 3, "é" + jobs.CutMark},
		{"a limit too small for the mark gives the mark", "hello world", 2, jobs.CutMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := jobs.Cut(tt.in, tt.limit)
			if got != tt.want {
				t.Errorf("Cut(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Cut(%q, %d) = %q is not valid UTF-8", tt.in, tt.limit, got)
			}
		})
	}
}

// boundResult is a result as the worker writes it, around dep and rerr.
func boundResult(dep *jobs.DeploymentResult, rerr *jobs.ResultError) jobs.Result {
	now := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	status := jobs.StatusSucceeded
	if rerr != nil {
		status = jobs.StatusFailed
	}
	return jobs.Result{
		JobID: "rotate-2026-12-01", Subject: jobs.SubjectCertificateUpdate, ProjectName: "MyProject",
		ResourceName: "my-certificate", Status: status, Attempts: 1, StartedAt: now, FinishedAt: now,
		DeploymentResult: dep, Error: rerr,
	}
}

// manyEnvironments is a deployment report of n environments of pods pods,
// each pod's detail detailSize bytes of text that JSON escapes six-fold;
// every third environment failed.
func manyEnvironments(n, pods, detailSize int) *jobs.DeploymentResult {
	d := &jobs.DeploymentResult{Message: "Deployment completed with errors", EnvironmentResults: []jobs.EnvironmentResult{}}
	detail := strings.Repeat("\x01", detailSize)
	for i := range n {
		e := jobs.EnvironmentResult{EnvironmentName: fmt.Sprintf("env-%03d", i), Success: i%3 != 0, Message: detail}
		for p := range pods {
			e.Pods = append(e.Pods, jobs.PodResult{PodName: fmt.Sprintf("env-%03d-gw-%d", i, p), Success: e.Success, Detail: detail})
		}
		d.EnvironmentResults = append(d.EnvironmentResults, e)
	}
	return d
}

func TestBoundCutsAnOversizeResultBelowTheLimit(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat(`"`, 1<<20) // 1 MiB, 2 MiB once escaped
	tests := []struct {
		name string
		in   jobs.Result
	}{
		{"a 1 MiB error message", boundResult(nil, &jobs.ResultError{Code: "bad_request", Message: huge})},
		{"a 1 MiB deployment message", boundResult(&jobs.DeploymentResult{Success: true, Message: huge, EnvironmentResults: []jobs.EnvironmentResult{}}, nil)},
		{"64 environments of 64 pods with 1 KiB details", boundResult(manyEnvironments(64, 64, 1<<10), nil)},
		{"1000 environments of 4 pods with 100-byte details", boundResult(manyEnvironments(1000, 4, 100), nil)},
		{"1000 environments without pods", boundResult(manyEnvironments(1000, 0, 1<<10), nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is cut below MaxResultSize", func(t *testing.T) {
			t.Parallel()
			before, _ := json.Marshal(tt.in)
			got := jobs.Bound(tt.in, jobs.MaxResultSize)
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > jobs.MaxResultSize {
				t.Errorf("bounded result is %d bytes, want at most %d", len(b), jobs.MaxResultSize)
			}
			if after, _ := json.Marshal(tt.in); string(after) != string(before) {
				t.Errorf("Bound changed the caller's result")
			}
			want := tt.in
			want.DeploymentResult, want.Error = nil, nil
			got.DeploymentResult, got.Error = nil, nil
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("identifying fields changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBoundKeepsWhatMattersAndSaysWhatItLeftOut(t *testing.T) {
	t.Parallel()
	in := boundResult(manyEnvironments(300, 4, 200), nil)
	got := jobs.Bound(in, jobs.MaxResultSize)
	d := got.DeploymentResult
	if n := len(d.EnvironmentResults); n == 0 || n >= 300 {
		t.Fatalf("%d environments kept, want some, and fewer than 300", n)
	}
	failed := 0
	for _, e := range d.EnvironmentResults {
		if !e.Success {
			failed++
		}
	}
	if want := min(100, len(d.EnvironmentResults)); failed != want {
		t.Errorf("%d failed environments kept of %d, want %d: failures are kept first", failed, len(d.EnvironmentResults), want)
	}
	if !strings.Contains(d.Message, fmt.Sprintf("[%d environment and", 300-len(d.EnvironmentResults))) {
		t.Errorf("message %q does not count the %d environments left out", d.Message, 300-len(d.EnvironmentResults))
	}
	for i := 1; i < len(d.EnvironmentResults); i++ {
		if d.EnvironmentResults[i-1].EnvironmentName >= d.EnvironmentResults[i].EnvironmentName {
			t.Fatalf("environments out of Apinizer's order at %d", i)
		}
	}
}

func TestBoundLeavesASmallResultAlone(t *testing.T) {
	t.Parallel()
	in := boundResult(manyEnvironments(2, 2, 100), &jobs.ResultError{Code: "bad_request", Message: strings.Repeat("m", 4<<10)})
	if diff := cmp.Diff(in, jobs.Bound(in, jobs.MaxResultSize)); diff != "" {
		t.Errorf("a result under the limit changed (-want +got):\n%s", diff)
	}
	cut := jobs.Bound(in, 4<<10)
	if got := cut.Error.Message; len(got) > jobs.MaxMessageSize || !strings.HasSuffix(got, jobs.CutMark) {
		t.Errorf("over the limit, the error message is %d bytes ending %q, want at most %d ending %q",
			len(got), got[max(len(got)-10, 0):], jobs.MaxMessageSize, jobs.CutMark)
	}
}
