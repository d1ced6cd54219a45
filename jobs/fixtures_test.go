package jobs_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// pemFixture holds PEM text for the tests: a real self-signed certificate and
// the blocks a producer must never send.
type pemFixture struct {
	cert      string // one CERTIFICATE block
	pkcs8Key  string // one "PRIVATE KEY" block
	rsaKey    string // one "RSA PRIVATE KEY" block
	publicKey string // one "PUBLIC KEY" block
}

// pemFixtures is generated once per test binary: key generation is the most
// expensive thing these tests do.
var pemFixtures = sync.OnceValues(func() (pemFixture, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return pemFixture{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(20261123),
		Subject:      pkix.Name{CommonName: "my-certificate.example.com", Organization: []string{"MyProject"}},
		DNSNames:     []string{"my-certificate.example.com"},
		NotBefore:    time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2027, 11, 23, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return pemFixture{}, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return pemFixture{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return pemFixture{}, err
	}
	encode := func(typ string, b []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}))
	}
	return pemFixture{
		cert:      encode("CERTIFICATE", der),
		pkcs8Key:  encode("PRIVATE KEY", pkcs8),
		rsaKey:    encode("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)),
		publicKey: encode("PUBLIC KEY", pub),
	}, nil
})

func testPEM(tb testing.TB) pemFixture {
	tb.Helper()
	f, err := pemFixtures()
	if err != nil {
		tb.Fatalf("generating PEM fixtures: %v", err)
	}
	return f
}

// exampleBodies are the wire examples, one per subject, as a producer would
// write them; the certificate bodies are the CONTRACT.md example. PEM stands
// for the JSON string of a real certificate.
var exampleBodies = map[string]string{
	jobs.SubjectCertificateUpdate: `{
  "jobId": "rotate-2026-11-23-my-certificate",
  "projectName": "MyProject",
  "certificateName": "my-certificate",
  "alias": "updated-cert-alias",
  "certificateDescription": "Updated SSL certificate",
  "environmentList": ["production", "staging"],
  "pemEncodedFile": PEM,
  "jwkUpdateAction": "UPDATE",
  "updateScope": "SAME_PROJECT"
}`,
	jobs.SubjectCertificateCreate: `{
  "jobId": "create-2026-11-23-my-certificate",
  "projectName": "MyProject",
  "certificateName": "my-certificate",
  "alias": "my-cert-alias",
  "certificateDescription": "SSL certificate",
  "environmentList": ["production", "staging"],
  "pemEncodedFile": PEM
}`,
	jobs.SubjectCertificateDelete: `{
  "jobId": "delete-2026-11-23-my-certificate",
  "projectName": "MyProject",
  "certificateName": "my-certificate",
  "jwkDeleteAction": "NULLIFY"
}`,
	jobs.SubjectKeyDelete: `{
  "jobId": "delete-2026-11-23-my-key",
  "projectName": "MyProject",
  "keyName": "my-key",
  "jwkDeleteAction": "DELETE"
}`,
	jobs.SubjectCredentialDelete: `{
  "jobId": "delete-2026-11-23-api-user",
  "projectName": "MyProject",
  "username": "api-user"
}`,
	jobs.SubjectCredentialPublicKeyDelete: `{
  "jobId": "unassign-2026-11-23-api-user",
  "projectName": "MyProject",
  "username": "api-user"
}`,
}

// The apply example is certificate.update's body with an id of its own and
// a precondition.
func init() {
	exampleBodies[jobs.SubjectCertificateApply] = strings.NewReplacer(
		`"jobId": "rotate-`, `"jobId": "apply-`,
		`"updateScope": "SAME_PROJECT"`, `"updateScope": "SAME_PROJECT",`+"\n"+`  "expectedThumbprint": "`+exampleThumbprint+`"`,
	).Replace(exampleBodies[jobs.SubjectCertificateUpdate])
}

// exampleThumbprint is the apply example's expectedThumbprint.
const exampleThumbprint = "a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90:01:12:23:34"

// exampleBody returns the wire example for subject with a real certificate.
func exampleBody(tb testing.TB, subject string) []byte {
	tb.Helper()
	body, ok := exampleBodies[subject]
	if !ok {
		tb.Fatalf("no example body for %s", subject)
	}
	pemJSON, err := json.Marshal(testPEM(tb).cert)
	if err != nil {
		tb.Fatal(err)
	}
	return []byte(strings.Replace(body, "PEM", string(pemJSON), 1))
}

// exampleJob returns the job exampleBody decodes to.
func exampleJob(tb testing.TB, subject string) jobs.Job {
	tb.Helper()
	cert := testPEM(tb).cert
	switch subject {
	case jobs.SubjectCertificateUpdate:
		return &jobs.CertificateUpdate{
			JobID:           "rotate-2026-11-23-my-certificate",
			ProjectName:     "MyProject",
			CertificateName: "my-certificate",
			CertificateFields: jobs.CertificateFields{
				Alias:                  "updated-cert-alias",
				CertificateDescription: "Updated SSL certificate",
				EnvironmentList:        []string{"production", "staging"},
				PEMEncodedFile:         cert,
			},
			JWKUpdateAction: jobs.JWKUpdateUpdate,
			UpdateScope:     jobs.UpdateScopeSameProject,
		}
	case jobs.SubjectCertificateCreate:
		return &jobs.CertificateCreate{
			JobID:           "create-2026-11-23-my-certificate",
			ProjectName:     "MyProject",
			CertificateName: "my-certificate",
			CertificateFields: jobs.CertificateFields{
				Alias:                  "my-cert-alias",
				CertificateDescription: "SSL certificate",
				EnvironmentList:        []string{"production", "staging"},
				PEMEncodedFile:         cert,
			},
		}
	case jobs.SubjectCertificateDelete:
		return &jobs.CertificateDelete{
			JobID:           "delete-2026-11-23-my-certificate",
			ProjectName:     "MyProject",
			CertificateName: "my-certificate",
			JWKDeleteAction: jobs.JWKDeleteNullify,
		}
	case jobs.SubjectCertificateApply:
		// certificate.update's body, with a precondition.
		u := *exampleJob(tb, jobs.SubjectCertificateUpdate).(*jobs.CertificateUpdate)
		u.JobID = "apply-2026-11-23-my-certificate"
		u.ExpectedThumbprint = exampleThumbprint
		return &jobs.CertificateApply{CertificateUpdate: u}
	case jobs.SubjectKeyDelete:
		return &jobs.KeyDelete{
			JobID:           "delete-2026-11-23-my-key",
			ProjectName:     "MyProject",
			KeyName:         "my-key",
			JWKDeleteAction: jobs.JWKDeleteDelete,
		}
	case jobs.SubjectCredentialDelete:
		return &jobs.CredentialDelete{
			JobID:       "delete-2026-11-23-api-user",
			ProjectName: "MyProject",
			Username:    "api-user",
		}
	case jobs.SubjectCredentialPublicKeyDelete:
		return &jobs.CredentialPublicKeyDelete{
			JobID:       "unassign-2026-11-23-api-user",
			ProjectName: "MyProject",
			Username:    "api-user",
		}
	}
	if j := newKindExample(subject); j != nil {
		return j
	}
	tb.Fatalf("no example job for %s", subject)
	return nil
}

// editBody returns the wire example for subject with edits applied to its
// decoded JSON object, for building one broken rule at a time.
func editBody(tb testing.TB, subject string, edits ...func(m map[string]any)) []byte {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(exampleBody(tb, subject), &m); err != nil {
		tb.Fatal(err)
	}
	for _, edit := range edits {
		edit(m)
	}
	body, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// set returns an edit that sets key to v.
func set(key string, v any) func(map[string]any) {
	return func(m map[string]any) { m[key] = v }
}

// unset returns an edit that removes key.
func unset(key string) func(map[string]any) {
	return func(m map[string]any) { delete(m, key) }
}
