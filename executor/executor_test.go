package executor

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "s3cret-token-value"

// fastRetry retries quickly so that tests of retries take milliseconds.
func fastRetry() RetryPolicy {
	return RetryPolicy{
		InitialInterval:     time.Millisecond,
		MaxInterval:         5 * time.Millisecond,
		MaxElapsedTime:      10 * time.Second,
		Multiplier:          2,
		RandomizationFactor: 0,
	}
}

// bundle is what most tests need: a seeded simulator and a client for it.
type bundle struct {
	sim    *apinizertest.Server
	client *Client
	pem    string
}

// setup starts a simulator seeded with MyProject (production, staging),
// my-certificate, my-key and api-user with a public key, and a client with
// fastRetry. mod, if not nil, adjusts the client config.
func setup(t testing.TB, mod func(*Config)) *bundle {
	t.Helper()
	srv := apinizertest.NewServer(apinizertest.Config{Token: testToken})
	t.Cleanup(srv.Close)
	pemText := testPEM(t)
	srv.AddProject("MyProject", "production", "staging")
	srv.AddCertificate("MyProject", "my-certificate", pemText)
	srv.AddKey("MyProject", "my-key")
	srv.AddCredential("MyProject", "api-user", true)

	cfg := Config{
		BaseURL:        srv.URL,
		Token:          func() (string, error) { return testToken, nil },
		AttemptTimeout: 5 * time.Second,
		Retry:          fastRetry(),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return &bundle{sim: srv, client: c, pem: pemText}
}

// testPEM returns a fresh self-signed certificate in PEM form.
func testPEM(t testing.TB) string {
	t.Helper()
	p, err := selfsigned.PEM("executor test")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// class names the outcome class of err, so tables can state it in one word.
func class(err error) string {
	perm, retry := errors.Is(err, ErrPermanent), errors.Is(err, ErrRetryable)
	switch {
	case err == nil:
		return "none"
	case perm && retry:
		return "both"
	case perm:
		return "permanent"
	case retry:
		return "retryable"
	}
	return "unclassified"
}

func certificateUpdate(pemText string) *jobs.CertificateUpdate {
	return &jobs.CertificateUpdate{
		JobID:           "job-update",
		ProjectName:     "MyProject",
		CertificateName: "my-certificate",
		CertificateFields: jobs.CertificateFields{
			Alias:                  "updated-cert-alias",
			CertificateDescription: "Updated SSL certificate",
			EnvironmentList:        []string{"production", "staging"},
			PEMEncodedFile:         pemText,
		},
		JWKUpdateAction: jobs.JWKUpdateUpdate,
		UpdateScope:     jobs.UpdateScopeSameProject,
	}
}
