package apinizertest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
)

// served returns, per environment, the thumbprint the simulator's
// get-certificate answer shows for my-certificate.
func served(t *testing.T, s *apinizertest.Server) map[string]string {
	t.Helper()
	status, body, err := send(context.Background(), t, s, call{method: http.MethodGet, path: "/apiops/projects/MyProject/certificates/my-certificate/"})
	if err != nil || status != http.StatusOK {
		t.Fatalf("get certificate: %d %v %v", status, body, err)
	}
	out := map[string]string{}
	cert := body.(map[string]any)["resultList"].([]any)[0].(map[string]any)
	for _, e := range cert["certificateEnvironmentList"].([]any) {
		e := e.(map[string]any)
		out[e["environmentName"].(string)] = e["sha1Thumbprint"].(string)
	}
	return out
}

func TestEnvironmentsOfAProjectAsThePageShowsThem(t *testing.T) {
	t.Parallel()
	s := setup(t)
	status, body, err := send(context.Background(), t, s, call{method: http.MethodGet, path: "/apiops/projects/MyProject/environments/"})
	if err != nil || status != http.StatusOK {
		t.Fatalf("get environments: %d %v %v", status, body, err)
	}
	var names []string
	for _, e := range body.(map[string]any)["resultList"].([]any) {
		names = append(names, e.(map[string]any)["name"].(string))
	}
	if diff := cmp.Diff([]string{"production", "staging"}, names); diff != "" {
		t.Errorf("environment names (-want +got):\n%s", diff)
	}
	if got := body.(map[string]any)["resultCount"]; got != float64(2) {
		t.Errorf("resultCount = %v, want 2", got)
	}
	s.SetStyle(apinizertest.StyleCurrent)
	status, body, _ = send(context.Background(), t, s, call{method: http.MethodGet, path: "/apiops/projects/Nope/environments/"})
	want := decode(t, `{"status": "FAILURE", "resultMessage": "Project (Nope) is not found or user does not have privilege to access it!"}`)
	if status != http.StatusBadRequest || !cmp.Equal(want, body) {
		t.Errorf("unknown project: %d %v; want 400 %v", status, body, want)
	}
	if n := len(s.Applied()); n != 0 {
		t.Errorf("reads counted as %d writes", n)
	}
}

func TestCertificatesChangedBehindTheWorkersBack(t *testing.T) {
	t.Parallel()
	t.Run("a replaced environment serves the new certificate and nothing counts as applied", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		before := served(t, s)
		other := testPEM(t)
		if !s.ReplaceCertificate("MyProject", "my-certificate", "staging", other) {
			t.Fatal("ReplaceCertificate found no certificate")
		}
		after := served(t, s)
		if after["production"] != before["production"] || after["staging"] == before["staging"] || after["staging"] == "" {
			t.Errorf("served %v after replacing staging, was %v", after, before)
		}
		if n := len(s.Applied()); n != 0 {
			t.Errorf("applied = %v, want no writes", s.Applied())
		}
		if s.ReplaceCertificate("MyProject", "missing", "", other) {
			t.Error("ReplaceCertificate reported a missing certificate as replaced")
		}
	})
	t.Run("a stale environment keeps its certificate through an update", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		before := served(t, s)
		s.StaleEnvironment("MyProject", "staging", true)
		fields, files := certificateFields(testPEM(t))
		status, body, err := send(context.Background(), t, s, call{method: http.MethodPut, path: "/apiops/projects/MyProject/certificates/my-certificate/", fields: fields, files: files})
		if err != nil || status != http.StatusOK {
			t.Fatalf("update: %d %v %v", status, body, err)
		}
		after := served(t, s)
		if after["staging"] != before["staging"] || after["production"] == before["production"] {
			t.Errorf("served %v after the update, was %v; want staging unchanged and production new", after, before)
		}
		s.StaleEnvironment("MyProject", "staging", false)
		_, _, _ = send(context.Background(), t, s, call{method: http.MethodPut, path: "/apiops/projects/MyProject/certificates/my-certificate/", fields: fields, files: files})
		if again := served(t, s); again["staging"] != again["production"] {
			t.Errorf("served %v after staging recovered; want both the same", again)
		}
	})
	t.Run("a stale environment serves nothing of a created certificate", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.StaleEnvironment("MyProject", "production", true)
		fields, files := certificateFields(testPEM(t))
		fields["certificateName"] = "new-cert"
		if status, body, err := send(context.Background(), t, s, call{method: http.MethodPost, path: "/apiops/projects/MyProject/certificates/", fields: fields, files: files}); err != nil || status != http.StatusOK {
			t.Fatalf("create: %d %v %v", status, body, err)
		}
		status, body, _ := send(context.Background(), t, s, call{method: http.MethodGet, path: "/apiops/projects/MyProject/certificates/new-cert/"})
		envs := body.(map[string]any)["resultList"].([]any)[0].(map[string]any)["certificateEnvironmentList"].([]any)
		if status != http.StatusOK || len(envs) != 1 || envs[0].(map[string]any)["environmentName"] != "staging" {
			t.Errorf("new certificate served in %v; want staging alone", envs)
		}
	})
}
