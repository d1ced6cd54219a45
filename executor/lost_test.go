package executor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// revisions are the two documented revisions the simulator answers as.
var revisions = []struct {
	name  string
	style apinizertest.ResponseStyle
}{
	{"the older revision", apinizertest.StyleClassic},
	{"the current revision", apinizertest.StyleCurrent},
}

func certificateCreate(name, pemText string) *jobs.CertificateCreate {
	return &jobs.CertificateCreate{
		JobID: "job-create", ProjectName: "MyProject", CertificateName: name,
		CertificateFields: jobs.CertificateFields{
			Alias: name + "-alias", CertificateDescription: "created", EnvironmentList: []string{"production", "staging"},
			PEMEncodedFile: pemText,
		},
	}
}

// TestLostAnswerEndsAsTheTruth makes Apinizer apply every job kind and then
// drop the connection; the in-process retry meets the changed state and
// must end succeeded, with the change applied exactly once.
func TestLostAnswerEndsAsTheTruth(t *testing.T) {
	t.Parallel()
	kinds := []struct {
		name     string
		job      func(b *bundle) jobs.Job
		resource string
		check    func(t *testing.T, b *bundle)
	}{
		{"certificate.update", func(b *bundle) jobs.Job { return certificateUpdate(testPEM(t)) }, "certificate/MyProject/my-certificate", nil},
		{"certificate.create", func(b *bundle) jobs.Job { return certificateCreate("new-certificate", b.pem) }, "certificate/MyProject/new-certificate",
			func(t *testing.T, b *bundle) {
				if _, ok := b.sim.Certificate("MyProject", "new-certificate"); !ok {
					t.Error("the certificate does not exist")
				}
			}},
		{"certificate.delete", func(*bundle) jobs.Job {
			return &jobs.CertificateDelete{ProjectName: "MyProject", CertificateName: "my-certificate"}
		}, "certificate/MyProject/my-certificate", nil},
		{"key.delete", func(*bundle) jobs.Job { return &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "my-key"} }, "key/MyProject/my-key", nil},
		{"credential.delete", func(*bundle) jobs.Job {
			return &jobs.CredentialDelete{ProjectName: "MyProject", Username: "api-user"}
		}, "credential/MyProject/api-user", nil},
		{"credential.publickey.delete", func(*bundle) jobs.Job {
			return &jobs.CredentialPublicKeyDelete{ProjectName: "MyProject", Username: "api-user"}
		}, "credential/MyProject/api-user", func(t *testing.T, b *bundle) {
			if c, ok := b.sim.Credential("MyProject", "api-user"); !ok || c.HasPublicKey {
				t.Errorf("credential %+v (exists %v), want it without a public key", c, ok)
			}
		}},
	}
	for _, rev := range revisions {
		for _, k := range kinds {
			t.Run(k.name+" answered by "+rev.name+" ends succeeded after the answer is lost", func(t *testing.T) {
				t.Parallel()
				b := setup(t, nil)
				b.sim.SetStyle(rev.style)
				b.sim.AddFault(apinizertest.Fault{Method: methodOf(k.name), PathPrefix: "/apiops/", LoseAnswer: true, Times: 1})

				resp, err := b.client.Execute(context.Background(), k.job(b), Call{})
				if err != nil || resp.Status != jobs.StatusSucceeded {
					t.Fatalf("Execute = %+v, %v; want succeeded", resp, err)
				}
				// An update whose answer was lost is read back instead of
				// being sent again; every other kind is retried.
				if want := map[bool]int{true: 1, false: 2}[k.name == "certificate.update"]; resp.Attempts != want {
					t.Errorf("attempts = %d, want %d", resp.Attempts, want)
				}
				if n := b.sim.Applied()[k.resource]; n != 1 {
					t.Errorf("applied %d times, want exactly 1", n)
				}
				if k.check != nil {
					k.check(t, b)
				}
			})
		}
	}
}

// methodOf is the HTTP method of a job kind's write.
func methodOf(kind string) string {
	switch {
	case strings.HasSuffix(kind, ".update"):
		return http.MethodPut
	case strings.HasSuffix(kind, ".create"):
		return http.MethodPost
	}
	return http.MethodDelete
}

func TestLostAnswerRefusalsThatStand(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("a create on a redelivery meeting another certificate of that name fails already_exists, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			resp, err := b.client.Execute(context.Background(), certificateCreate("my-certificate", testPEM(t)), Call{PriorAttempts: 1})
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeAlreadyExists || class(err) != "permanent" {
				t.Fatalf("Execute = %+v, %v; want a permanent already_exists", resp, err)
			}
			reads := 0
			for _, r := range b.sim.Requests() {
				if r.Method == http.MethodGet && r.Path == "/apiops/projects/MyProject/certificates/my-certificate/" {
					reads++
				}
			}
			if reads != 1 || resp.Attempts != 1 {
				t.Errorf("%d reads and %d attempts, want the certificate read back once after 1 attempt", reads, resp.Attempts)
			}
		})
		t.Run("a create on a redelivery meeting the job's own certificate succeeds, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			resp, err := b.client.Execute(context.Background(), certificateCreate("my-certificate", b.pem), Call{PriorAttempts: 1})
			if err != nil || resp.Status != jobs.StatusSucceeded || !resp.AlreadyApplied || resp.Attempts != 1 {
				t.Fatalf("Execute = %+v, %v; want succeeded and AlreadyApplied after 1 attempt", resp, err)
			}
		})
		t.Run("a create on its first attempt meeting its own certificate fails already_exists without a read, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			_, err := b.client.Execute(context.Background(), certificateCreate("my-certificate", b.pem), Call{})
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeAlreadyExists {
				t.Fatalf("error %v, want already_exists", err)
			}
			for _, r := range b.sim.Requests() {
				if r.Method == http.MethodGet {
					t.Errorf("a read %s on the first attempt, want none", r.Path)
				}
			}
		})
		t.Run("a public key removal from a missing credential on a redelivery fails not_found, answered by "+rev.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sim.SetStyle(rev.style)
			_, err := b.client.Execute(context.Background(), &jobs.CredentialPublicKeyDelete{ProjectName: "MyProject", Username: "gone"}, Call{PriorAttempts: 2})
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeNotFound || class(err) != "permanent" {
				t.Fatalf("error %v, want a permanent not_found", err)
			}
		})
	}
	t.Run("a public key removal without a key assigned succeeds on its first attempt as already gone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.sim.SetStyle(apinizertest.StyleCurrent)
		b.sim.AddCredential("MyProject", "keyless", false)
		resp, err := b.client.Execute(context.Background(), &jobs.CredentialPublicKeyDelete{ProjectName: "MyProject", Username: "keyless"}, Call{})
		if err != nil || resp.Status != jobs.StatusSucceeded || !resp.AlreadyGone || resp.Attempts != 1 {
			t.Fatalf("Execute = %+v, %v; want succeeded, AlreadyGone, 1 attempt", resp, err)
		}
		if n := b.sim.Applied()["credential/MyProject/keyless"]; n != 0 {
			t.Errorf("applied %d times, want 0: Apinizer refused", n)
		}
	})
}

func TestCertificateReadsEveryDocumentedShape(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	want, err := jobs.Thumbprint(b.pem)
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range revisions {
		t.Run("the simulator's answer as "+rev.name+" gives the stored thumbprint per environment", func(t *testing.T) {
			b.sim.SetStyle(rev.style)
			live, err := b.client.Certificate(context.Background(), "MyProject", "my-certificate")
			if err != nil || len(live) != 2 {
				t.Fatalf("Certificate = %+v, %v; want two environments", live, err)
			}
			for _, e := range live {
				if e.SHA1Thumbprint != want || e.SubjectDN == "" || e.EndDate == "" {
					t.Errorf("%+v, want thumbprint %s with subject and dates", e, want)
				}
			}
		})
	}
	bodies := []struct{ name, body, want string }{
		{"get-certificate.mdx's success wrapper with a colon-separated lower-case thumbprint", `{"success": true, "resultList": [{"name": "c", "certificateEnvironmentList": [
			{"environmentName": "production", "sha1Thumbprint": "a1:b2:c3", "subjectDn": "CN=x"}]}]}`, "A1B2C3"},
		{"list-certificates.mdx's status wrapper picks the named certificate", `{"status": "SUCCESS", "resultList": [
			{"name": "other", "certificateEnvironmentList": [{"environmentName": "production", "sha1Thumbprint": "FFFF"}]},
			{"name": "c", "certificateEnvironmentList": [{"environmentName": "production", "sha1Thumbprint": "ABCD"}]}]}`, "ABCD"},
		{"a certificate at the top level", `{"name": "c", "certificateEnvironmentList": [{"environmentName": "production", "sha1Thumbprint": "ABCD"}]}`, "ABCD"},
	}
	for _, tt := range bodies {
		t.Run(tt.name+" is read", func(t *testing.T) {
			live, err := parseCertificate("c", []byte(tt.body))
			if err != nil || len(live) != 1 || live[0].SHA1Thumbprint != tt.want || live[0].EnvironmentName != "production" {
				t.Errorf("parseCertificate = %+v, %v; want production with %s", live, err, tt.want)
			}
		})
	}
	t.Run("a thumbprint missing from the answer is computed from the content", func(t *testing.T) {
		der := strings.Join(strings.Split(strings.TrimSpace(b.pem), "\n")[1:len(strings.Split(strings.TrimSpace(b.pem), "\n"))-1], "")
		live, err := parseCertificate("c", []byte(`{"success": true, "resultList": [{"name": "c", "certificateEnvironmentList": [
			{"environmentName": "production", "base64EncodedContent": "`+der+`"}]}]}`))
		if err != nil || len(live) != 1 || live[0].SHA1Thumbprint != want {
			t.Errorf("parseCertificate = %+v, %v; want thumbprint %s", live, err, want)
		}
	})
	t.Run("an answer without a certificate is an invalid response", func(t *testing.T) {
		_, err := parseCertificate("c", []byte(`{"success": true}`))
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeInvalidResponse {
			t.Errorf("error %v, want invalid_response", err)
		}
	})
}
