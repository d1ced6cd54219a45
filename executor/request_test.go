package executor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// received is the part of a simulator log entry a request test checks.
type received struct {
	Method, Path          string
	Query                 url.Values
	Authorization, Accept string
	Traceparent           string
	Form, Files           map[string]string
	Status                int
}

func TestExecuteSendsEachJobAsDocumented(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	newPEM := testPEM(t)
	steps := []struct {
		name string
		job  jobs.Job
		want received
	}{
		{
			name: "certificate create is a multipart POST with certificateName",
			job: &jobs.CertificateCreate{
				JobID: "j1", ProjectName: "MyProject", CertificateName: "new-cert",
				CertificateFields: jobs.CertificateFields{
					Alias: "new-alias", CertificateDescription: "New certificate",
					EnvironmentList: []string{"production"}, PEMEncodedFile: newPEM,
				},
			},
			want: received{
				Method: "POST", Path: "/apiops/projects/MyProject/certificates/",
				Form: map[string]string{
					"certificateName": "new-cert", "alias": "new-alias",
					"certificateDescription": "New certificate", "environmentList": "production",
				},
				Files: map[string]string{"pemEncodedFile": newPEM},
			},
		},
		{
			name: "certificate update is a multipart PUT with the JWK query",
			job:  certificateUpdate(newPEM),
			want: received{
				Method: "PUT", Path: "/apiops/projects/MyProject/certificates/my-certificate/",
				Query: url.Values{"jwkUpdateAction": {"UPDATE"}, "updateScope": {"SAME_PROJECT"}},
				Form: map[string]string{
					"alias": "updated-cert-alias", "certificateDescription": "Updated SSL certificate",
					"environmentList": "production,staging",
				},
				Files: map[string]string{"pemEncodedFile": newPEM},
			},
		},
		{
			name: "certificate delete sends jwkDeleteAction",
			job:  &jobs.CertificateDelete{JobID: "j3", ProjectName: "MyProject", CertificateName: "my-certificate", JWKDeleteAction: jobs.JWKDeleteDelete},
			want: received{
				Method: "DELETE", Path: "/apiops/projects/MyProject/certificates/my-certificate/",
				Query: url.Values{"jwkDeleteAction": {"DELETE"}},
			},
		},
		{
			name: "key delete without jwkDeleteAction sends no query",
			job:  &jobs.KeyDelete{JobID: "j4", ProjectName: "MyProject", KeyName: "my-key"},
			want: received{Method: "DELETE", Path: "/apiops/projects/MyProject/keys/my-key/"},
		},
		{
			name: "credential public key delete targets publicKey/",
			job:  &jobs.CredentialPublicKeyDelete{JobID: "j5", ProjectName: "MyProject", Username: "api-user"},
			want: received{Method: "DELETE", Path: "/apiops/projects/MyProject/credentials/api-user/publicKey/"},
		},
		{
			name: "credential delete targets the credential",
			job:  &jobs.CredentialDelete{JobID: "j6", ProjectName: "MyProject", Username: "api-user"},
			want: received{Method: "DELETE", Path: "/apiops/projects/MyProject/credentials/api-user/"},
		},
	}
	// The steps change one simulator's state in order, so they run in
	// sequence.
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			b.sim.ResetLog()
			call := Call{Header: http.Header{
				"Traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
				"Authorization": {"Bearer caller-cannot-override"},
			}}
			resp, err := b.client.Execute(context.Background(), step.job, call)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if resp.Status != jobs.StatusSucceeded || resp.Attempts != 1 || resp.Deployment == nil || !resp.Deployment.Success {
				t.Errorf("response = %+v, want one successful attempt with a deployment report", resp)
			}
			reqs := b.sim.Requests()
			if len(reqs) != 1 {
				t.Fatalf("simulator received %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			got := received{
				Method: r.Method, Path: r.Path, Query: r.Query,
				Authorization: r.Header.Get("Authorization"), Accept: r.Header.Get("Accept"),
				Traceparent: r.Header.Get("Traceparent"),
				Form:        r.Form, Files: r.Files, Status: r.Status,
			}
			want := step.want
			want.Authorization, want.Accept, want.Status = "Bearer "+testToken, "application/json", 200
			want.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("request as received (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("the state reflects every change", func(t *testing.T) {
		created, ok := b.sim.Certificate("MyProject", "new-cert")
		if !ok || created.Alias != "new-alias" || created.PEM != newPEM {
			t.Errorf("new-cert = %+v, %v", created, ok)
		}
		if _, ok := b.sim.Certificate("MyProject", "my-certificate"); ok {
			t.Error("my-certificate still exists")
		}
		if b.sim.KeyExists("MyProject", "my-key") {
			t.Error("my-key still exists")
		}
		if _, ok := b.sim.Credential("MyProject", "api-user"); ok {
			t.Error("api-user still exists")
		}
	})
}

func TestCertificateFormFilePart(t *testing.T) {
	t.Parallel()
	pemText := testPEM(t)
	body, contentType, err := certificateForm("", certificateUpdate(pemText).CertificateFields)
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	type part struct{ Name, FileName, ContentType, Content string }
	var got []part
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, _ := io.ReadAll(p)
		got = append(got, part{p.FormName(), p.FileName(), p.Header.Get("Content-Type"), string(content)})
	}
	want := []part{
		{Name: "alias", Content: "updated-cert-alias"},
		{Name: "certificateDescription", Content: "Updated SSL certificate"},
		{Name: "environmentList", Content: "production,staging"},
		{Name: "pemEncodedFile", FileName: "certificate.pem", ContentType: "application/x-pem-file", Content: pemText},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("multipart parts (-want +got):\n%s", diff)
	}
}

func TestPathParametersAreEscaped(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.sim.AddProject("My Project", "production")
	b.sim.AddKey("My Project", "key?#ü;x")
	resp, err := b.client.Execute(context.Background(),
		&jobs.KeyDelete{JobID: "j", ProjectName: "My Project", KeyName: "key?#ü;x"}, Call{})
	if err != nil || resp.Status != jobs.StatusSucceeded {
		t.Fatalf("Execute = %+v, %v", resp, err)
	}
	if got, want := b.sim.Requests()[0].Path, "/apiops/projects/My%20Project/keys/key%3F%23%C3%BC%3Bx/"; got != want {
		t.Errorf("path = %s, want %s", got, want)
	}
	if b.sim.KeyExists("My Project", "key?#ü;x") {
		t.Error("the key was not deleted")
	}
}

func TestPathParametersThatChangeThePathAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		name string
		job  jobs.Job
	}{
		{"an empty project", &jobs.KeyDelete{ProjectName: "", KeyName: "k"}},
		{"an empty name", &jobs.KeyDelete{ProjectName: "P", KeyName: ""}},
		{"a slash", &jobs.CertificateDelete{ProjectName: "P", CertificateName: "a/b"}},
		{"a backslash", &jobs.CredentialDelete{ProjectName: `P\Q`, Username: "u"}},
		{"a dot-dot segment", &jobs.CredentialPublicKeyDelete{ProjectName: "P", Username: ".."}},
		{"a dot-dot inside", &jobs.KeyDelete{ProjectName: "P", KeyName: "a..b"}},
		{"a single dot", &jobs.KeyDelete{ProjectName: "P", KeyName: "."}},
		{"a percent sign", &jobs.KeyDelete{ProjectName: "P", KeyName: "%2F"}},
		{"a NUL", &jobs.KeyDelete{ProjectName: "P", KeyName: "a\x00"}},
		{"a newline", &jobs.CertificateUpdate{ProjectName: "P", CertificateName: "a\nb"}},
		{"a DEL", &jobs.KeyDelete{ProjectName: "P", KeyName: "a\x7f"}},
		{"a bad certificateName on create", &jobs.CertificateCreate{ProjectName: "P", CertificateName: "../x"}},
		{"a nil job", nil},
	}
	for _, tt := range tests {
		t.Run("a name with "+tt.name+" is refused before any request", func(t *testing.T) {
			resp, err := b.client.Execute(context.Background(), tt.job, Call{})
			if class(err) != "permanent" {
				t.Errorf("class = %s (%v), want permanent", class(err), err)
			}
			if resp.Attempts != 0 {
				t.Errorf("Attempts = %d, want 0", resp.Attempts)
			}
		})
	}
	if n := len(b.sim.Requests()); n != 0 {
		t.Errorf("simulator received %d requests, want 0", n)
	}
}

func TestAPIOpsURLKeepsTheBasePath(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, base, want string }{
		{"a bare host", "https://demo.apinizer.com", "https://demo.apinizer.com/apiops/projects/P%20Q/keys/k/"},
		{"a trailing slash is tolerated", "https://demo.apinizer.com/", "https://demo.apinizer.com/apiops/projects/P%20Q/keys/k/"},
		{"a path prefix is kept", "https://gw.example/apinizer/", "https://gw.example/apinizer/apiops/projects/P%20Q/keys/k/"},
		{"an escaped path prefix stays escaped", "http://gw.example/a%2Fb", "http://gw.example/a%2Fb/apiops/projects/P%20Q/keys/k/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, err := parseBaseURL(tt.base)
			if err != nil {
				t.Fatal(err)
			}
			u, err := apiopsURL(base, "P Q", lit("keys"), segment{"keyName", "k"})
			if err != nil {
				t.Fatal(err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("URL = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	token := func() (string, error) { return "t", nil }
	tests := []struct {
		name string
		cfg  Config
	}{
		{"a missing BaseURL", Config{Token: token}},
		{"a relative BaseURL", Config{BaseURL: "/apiops", Token: token}},
		{"a non-HTTP scheme", Config{BaseURL: "ftp://host", Token: token}},
		{"a BaseURL with a query", Config{BaseURL: "https://host/?x=1", Token: token}},
		{"a BaseURL with a fragment", Config{BaseURL: "https://host/#x", Token: token}},
		{"a BaseURL with user info", Config{BaseURL: "https://u:p@host/", Token: token}},
		{"a missing Token", Config{BaseURL: "https://host"}},
		{"a negative Concurrency", Config{BaseURL: "https://host", Token: token, Concurrency: -1}},
		{"a negative AttemptTimeout", Config{BaseURL: "https://host", Token: token, AttemptTimeout: -time.Second}},
		{"an incomplete RetryPolicy", Config{BaseURL: "https://host", Token: token, Retry: RetryPolicy{MaxAttempts: 3}}},
		{"a Multiplier below 1", Config{BaseURL: "https://host", Token: token, Retry: RetryPolicy{InitialInterval: 1, MaxInterval: 1, Multiplier: 0.5}}},
		{"a RandomizationFactor above 1", Config{BaseURL: "https://host", Token: token, Retry: RetryPolicy{InitialInterval: 1, MaxInterval: 1, Multiplier: 1, RandomizationFactor: 2}}},
	}
	for _, tt := range tests {
		t.Run("New refuses "+tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New error = %v, want ErrInvalidConfig", err)
			}
		})
	}

	t.Run("New applies the defaults", func(t *testing.T) {
		t.Parallel()
		got := Config{BaseURL: "https://host/", Token: token}.WithDefaults()
		if got.Concurrency != 16 || got.AttemptTimeout != 30*time.Second || got.Retry != DefaultRetryPolicy() {
			t.Errorf("defaults = %+v", got)
		}
		c, err := New(Config{BaseURL: "https://host/", Token: token, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		tr, ok := c.http.Transport.(*http.Transport)
		if !ok || tr.MaxIdleConnsPerHost != 4 || tr.MaxConnsPerHost != 0 || tr.ResponseHeaderTimeout != 30*time.Second || tr.TLSHandshakeTimeout == 0 {
			t.Errorf("default transport = %+v", tr)
		}
	})
}

func BenchmarkBuildRequest(b *testing.B) {
	base, err := parseBaseURL("https://demo.apinizer.com")
	if err != nil {
		b.Fatal(err)
	}
	job := certificateUpdate(testPEM(b))
	ctx := context.Background()
	c := &Client{base: base}
	b.ReportAllocs()
	for b.Loop() {
		r, err := c.buildRequest(job)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.newHTTPRequest(ctx, testToken, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPlusInANameIsEscaped(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.sim.AddKey("MyProject", "a+b")
	b.sim.AddKey("MyProject", "a b")
	resp, err := b.client.Execute(context.Background(), &jobs.KeyDelete{ProjectName: "MyProject", KeyName: "a+b"}, Call{})
	if err != nil || resp.Status != jobs.StatusSucceeded {
		t.Fatalf("Execute = %+v, %v; want succeeded", resp, err)
	}
	if reqs := b.sim.Requests(); len(reqs) != 1 || reqs[0].Path != "/apiops/projects/MyProject/keys/a%2Bb/" {
		t.Errorf("requests %+v, want one to /apiops/projects/MyProject/keys/a%%2Bb/", reqs)
	}
	if b.sim.KeyExists("MyProject", "a+b") || !b.sim.KeyExists("MyProject", "a b") {
		t.Error(`want "a+b" deleted and "a b" kept`)
	}
}
