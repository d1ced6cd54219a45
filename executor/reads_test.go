package executor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
)

func TestEnvironmentsAcceptEveryDocumentedShape(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want []string // nil: invalid_response
	}{
		{"the page's answer gives the names", `{"status": "SUCCESS", "resultList": [
			{"id": "60a7", "name": "production", "description": "Production environment", "type": "PRODUCTION", "accessUrl": "https://gw.example.com", "status": "PUBLISHED", "deployed": null, "redeployRequired": null},
			{"id": "60a8", "name": "staging", "type": "SANDBOX", "status": "PUBLISHED"}], "resultCount": 2}`, []string{"production", "staging"}},
		{"the older success flag is read the same", `{"success": true, "resultList": [{"name": "production"}]}`, []string{"production"}},
		{"an empty project has no environments", `{"status": "SUCCESS", "resultList": [], "resultCount": 0}`, []string{}},
		{"entries named environmentName are read", `{"status": "SUCCESS", "resultList": [{"environmentName": "qa"}]}`, []string{"qa"}},
		{"bare names are read", `{"status": "SUCCESS", "resultList": ["production", "staging"]}`, []string{"production", "staging"}},
		{"a list under environmentList is read", `{"success": true, "environmentList": [{"name": "qa"}]}`, []string{"qa"}},
		{"an answer without a list is invalid", `{"status": "SUCCESS"}`, nil},
		{"an answer that is not JSON is invalid", `<html>`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseEnvironments([]byte(c.body))
			if c.want == nil {
				var apiErr *APIError
				if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeInvalidResponse {
					t.Fatalf("parseEnvironments = %v, %v; want invalid_response", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvironmentsOfAProject(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("a known project's environments are listed and an unknown one is project_not_found, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			names, err := b.client.Environments(context.Background(), "MyProject")
			if err != nil || !cmp.Equal(names, []string{"production", "staging"}) {
				t.Fatalf("Environments = %v, %v", names, err)
			}
			_, err = b.client.Environments(context.Background(), "Nope")
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeProjectNotFound {
				t.Errorf("Environments(Nope) = %v, want project_not_found", err)
			}
		})
	}
	t.Run("a 503 is retried like any read", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/environments/", Reply: apinizertest.HTMLReply(503), Times: 2})
		if names, err := b.client.Environments(context.Background(), "MyProject"); err != nil || len(names) != 2 {
			t.Fatalf("Environments = %v, %v; want both after two 503s", names, err)
		}
	})
}

func TestApinizerTimes(t *testing.T) {
	t.Parallel()
	want := time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, s := range []string{"2025-12-31T23:59:59.000Z", "2025-12-31T23:59:59Z", "2026-01-01T00:59:59.000+0100", "2025-12-31T23:59:59"} {
		if got := parseDate(s); !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, want %v", s, got, want)
		}
	}
	if got := parseDate("next year"); !got.IsZero() {
		t.Errorf("apinizerTime of text = %v, want zero", got)
	}
}
