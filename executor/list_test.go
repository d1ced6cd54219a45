package executor

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestParseCertificatesAcceptsEveryDocumentedShape(t *testing.T) {
	t.Parallel()
	day := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	der := func(notBefore, notAfter time.Time) string {
		p, err := selfsigned.PEMValid("content.example", notBefore, notAfter)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	contentPEM := der(day("2026-01-02T00:00:00Z"), day("2027-01-02T00:00:00Z"))
	contentThumb, err := jobs.Thumbprint(contentPEM)
	if err != nil {
		t.Fatal(err)
	}
	contentB64 := encodeFirstCertificate(t, contentPEM)

	tests := []struct {
		name string
		body string
		want []ListedCertificate
	}{
		{
			name: "the page's example (status SUCCESS, resultList, ISO dates) reads every environment",
			body: `{"status": "SUCCESS", "resultList": [{"name": "my-certificate", "description": "SSL certificate for API",
				"certificateEnvironmentList": [
				{"environmentName": "production", "startDate": "2024-01-01T00:00:00.000Z", "endDate": "2025-12-31T23:59:59.000Z",
				 "base64EncodedContent": "MIIFXTCCBEWgAwIBAgIQ...", "sha1Thumbprint": "a1:b2:c3", "subjectDn": "CN=example.com, O=Example Inc, C=US", "alias": "my-cert-alias"},
				{"environmentName": "staging", "startDate": "2024-01-01T00:00:00.000Z", "endDate": "2025-06-30T00:00:00.000Z",
				 "sha1Thumbprint": "D4E5F6", "subjectDn": "CN=example.com", "alias": "my-cert-alias"}]}]}`,
			want: []ListedCertificate{{Name: "my-certificate", Environments: []CertificateEnvironment{
				{EnvironmentName: "production", SHA1Thumbprint: "A1B2C3", SubjectDN: "CN=example.com, O=Example Inc, C=US", Alias: "my-cert-alias",
					StartDate: "2024-01-01T00:00:00.000Z", EndDate: "2025-12-31T23:59:59.000Z",
					NotBefore: day("2024-01-01T00:00:00Z"), NotAfter: day("2025-12-31T23:59:59Z")},
				{EnvironmentName: "staging", SHA1Thumbprint: "D4E5F6", SubjectDN: "CN=example.com", Alias: "my-cert-alias",
					StartDate: "2024-01-01T00:00:00.000Z", EndDate: "2025-06-30T00:00:00.000Z",
					NotBefore: day("2024-01-01T00:00:00Z"), NotAfter: day("2025-06-30T00:00:00Z")},
			}}},
		},
		{
			name: "the older success wrapper with epoch-millisecond dates reads them as times",
			body: `{"success": true, "resultList": [{"name": "c", "certificateEnvironmentList": [
				{"environmentName": "production", "startDate": 1704067200000, "endDate": 1767225599000, "sha1Thumbprint": "AA"}]}]}`,
			want: []ListedCertificate{{Name: "c", Environments: []CertificateEnvironment{
				{EnvironmentName: "production", SHA1Thumbprint: "AA", StartDate: "1704067200000", EndDate: "1767225599000",
					NotBefore: day("2024-01-01T00:00:00Z"), NotAfter: day("2025-12-31T23:59:59Z")},
			}}},
		},
		{
			name: "an entry without dates, thumbprint or subject takes them from its content",
			body: `{"status": "SUCCESS", "result": [{"certificateName": "c", "certificateEnvironmentList": [
				{"environmentName": "production", "base64EncodedContent": "` + contentB64 + `"}]}]}`,
			want: []ListedCertificate{{Name: "c", Environments: []CertificateEnvironment{
				{EnvironmentName: "production", SHA1Thumbprint: contentThumb, SubjectDN: "CN=content.example",
					NotBefore: day("2026-01-02T00:00:00Z"), NotAfter: day("2027-01-02T00:00:00Z")},
			}}},
		},
		{
			name: "an empty project lists nothing",
			body: `{"status": "SUCCESS", "resultList": []}`,
			want: []ListedCertificate{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCertificates([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseCertificates (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a body without a list is an invalid response", func(t *testing.T) {
		t.Parallel()
		_, err := parseCertificates([]byte(`{"status": "SUCCESS"}`))
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Code != CodeInvalidResponse {
			t.Errorf("err = %v, want an invalid_response APIError", err)
		}
	})
}

func TestParseProjectsAcceptsEveryDocumentedShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       []string
	}{
		{"the page's example (project objects, resultCount) gives their names",
			`{"status": "SUCCESS", "resultList": [{"id": "1", "name": "default", "tags": ["core"]}, {"id": "2", "name": "MyProject", "tags": []}], "resultCount": 2}`,
			[]string{"default", "MyProject"}},
		{"a success wrapper with projectName fields gives them", `{"success": true, "resultList": [{"projectName": "A"}]}`, []string{"A"}},
		{"a list of bare names under result gives them", `{"success": true, "result": ["A", "B"]}`, []string{"A", "B"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProjects([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseProjects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListsReadTheSimulatorPerEnvironment(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	now := time.Now().UTC().Truncate(time.Second)
	soon, err := selfsigned.PEMValid("soon.example", now.Add(-24*time.Hour), now.Add(5*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b.sim.DeployCertificate("MyProject", "my-certificate", "staging", soon)
	b.sim.AddProject("Other", "production")
	ctx := context.Background()

	t.Run("projects lists every project", func(t *testing.T) {
		got, err := b.client.Projects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"MyProject", "Other"}, got); diff != "" {
			t.Errorf("Projects (-want +got):\n%s", diff)
		}
	})

	t.Run("each environment has the dates and thumbprint of the certificate it serves", func(t *testing.T) {
		got, err := b.client.Certificates(ctx, "MyProject")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Name != "my-certificate" || len(got[0].Environments) != 2 {
			t.Fatalf("Certificates = %+v, want my-certificate in two environments", got)
		}
		prodThumb, _ := jobs.Thumbprint(b.pem)
		soonThumb, _ := jobs.Thumbprint(soon)
		byEnv := map[string]CertificateEnvironment{}
		for _, e := range got[0].Environments {
			byEnv[e.EnvironmentName] = e
		}
		if e := byEnv["production"]; e.SHA1Thumbprint != prodThumb || e.NotAfter.Before(now.Add(300*24*time.Hour)) {
			t.Errorf("production = %+v, want thumbprint %s and a year's validity", e, prodThumb)
		}
		if e := byEnv["staging"]; e.SHA1Thumbprint != soonThumb || !e.NotAfter.Equal(now.Add(5*24*time.Hour)) ||
			!e.NotBefore.Equal(now.Add(-24*time.Hour)) || e.SubjectDN != "CN=soon.example" {
			t.Errorf("staging = %+v, want thumbprint %s, notAfter %s, subject CN=soon.example", e, soonThumb, now.Add(5*24*time.Hour))
		}
	})

	t.Run("a server error is retried like any read", func(t *testing.T) {
		b.sim.AddFault(apinizertest.Fault{Method: http.MethodGet, PathPrefix: "/apiops/projects/MyProject/certificates/", Times: 1,
			Reply: apinizertest.FailureReply(http.StatusServiceUnavailable, "busy")})
		if got, err := b.client.Certificates(ctx, "MyProject"); err != nil || len(got) != 1 {
			t.Errorf("Certificates after one 503 = %v, %v; want the list", got, err)
		}
	})

	t.Run("a missing project is project_not_found", func(t *testing.T) {
		_, err := b.client.Certificates(ctx, "NoSuchProject")
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeProjectNotFound {
			t.Errorf("err = %v, want project_not_found", err)
		}
	})
}

// encodeFirstCertificate is base64EncodedContent for pemText: its DER.
func encodeFirstCertificate(t *testing.T, pemText string) string {
	t.Helper()
	der := jobs.FirstCertificate(pemText)
	if der == nil {
		t.Fatal("no certificate in PEM")
	}
	return base64.StdEncoding.EncodeToString(der)
}
