package executor

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// secretContent is recognisable SECRET_KEY material: base64 of 16 bytes.
var secretContent = base64.StdEncoding.EncodeToString([]byte("RECOGNISABLE-KEY"))

// publicContent is a PUBLIC_KEY's content.
var publicContent = base64.StdEncoding.EncodeToString([]byte("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"))

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// encrypt armours clear for recipient, as a producer does.
func encrypt(t testing.TB, recipient age.Recipient, clear string) string {
	t.Helper()
	sealed, err := jobs.Seal(clear, recipient)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func secretKeyCreate(t testing.TB, name string, recipient age.Recipient) *jobs.KeyCreate {
	return &jobs.KeyCreate{JobID: "job-key-create", ProjectName: "MyProject", KeyName: name, KeyFields: jobs.KeyFields{
		Description: "signing", KeyType: jobs.KeySecret, Algorithm: jobs.AlgorithmDESede,
		CryptoKeyInfoEnvironmentList: []jobs.KeyEnvironment{{EnvironmentName: "production", EncryptedContent: encrypt(t, recipient, secretContent), Alias: "prod"}},
	}}
}

// keyBundle is setup with an age identity, a certificate whose JWK can be
// parsed, and a credential.
func keyBundle(t *testing.T, style apinizertest.ResponseStyle) (*bundle, *age.X25519Identity) {
	t.Helper()
	id := newIdentity(t)
	b := setup(t, func(c *Config) { c.Identities = []age.Identity{newIdentity(t), id} })
	b.sim.SetStyle(style)
	return b, id
}

// TestNewKindsSendTheDocumentedRequest checks method, path, query and body
// of every new kind against the reference pages, and that the change is
// made.
func TestNewKindsSendTheDocumentedRequest(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("in "+rev.name, func(t *testing.T) {
			t.Parallel()
			b, id := keyBundle(t, rev.style)
			kinds := []struct {
				name, method, path, query, body string
				job                             jobs.Job
				check                           func(t *testing.T)
			}{
				{"key.create of a SECRET_KEY sends the decrypted content", "POST", "/apiops/projects/MyProject/keys/", "",
					`{"name":"new-key","description":"signing","keyType":"SECRET_KEY","algorithm":"DESede","cryptoKeyInfoEnvironmentList":[{"environmentName":"production","content":"` + secretContent + `","alias":"prod"}]}`,
					secretKeyCreate(t, "new-key", id.Recipient()), func(t *testing.T) {
						k, ok := b.sim.Key("MyProject", "new-key")
						if !ok || k.Environments[0].Content != secretContent || k.Algorithm != "DESede" {
							t.Errorf("the key is %+v, %v; want the decrypted DESede material", k, ok)
						}
					}},
				{"key.update of a PUBLIC_KEY sends its content and query", "PUT", "/apiops/projects/MyProject/keys/my-key/", "jwkUpdateAction=UPDATE&updateScope=SAME_PROJECT",
					`{"name":"my-key","keyType":"PUBLIC_KEY","cryptoKeyInfoEnvironmentList":[{"environmentName":"staging","content":"` + publicContent + `"}]}`,
					&jobs.KeyUpdate{ProjectName: "MyProject", KeyName: "my-key", KeyFields: jobs.KeyFields{KeyType: jobs.KeyPublic,
						CryptoKeyInfoEnvironmentList: []jobs.KeyEnvironment{{EnvironmentName: "staging", Content: publicContent}}},
						JWKUpdateAction: jobs.JWKUpdateUpdate, UpdateScope: jobs.UpdateScopeSameProject}, func(t *testing.T) {
						if k, _ := b.sim.Key("MyProject", "my-key"); k.Revision != 2 {
							t.Errorf("the key's revision is %d, want 2", k.Revision)
						}
					}},
				{"credential.publickey.set", "PUT", "/apiops/projects/MyProject/credentials/api-user/publicKey/my-key/", "", "",
					&jobs.CredentialPublicKeySet{ProjectName: "MyProject", Username: "api-user", KeyName: "my-key"}, func(t *testing.T) {
						if c, _ := b.sim.Credential("MyProject", "api-user"); c.PublicKey != "my-key" {
							t.Errorf("the credential is %+v, want my-key assigned", c)
						}
					}},
				{"credential.certificate.set", "PUT", "/apiops/projects/MyProject/credentials/api-user/certificate/my-certificate/", "", "",
					&jobs.CredentialCertificateSet{ProjectName: "MyProject", Username: "api-user", CertificateName: "my-certificate"}, func(t *testing.T) {
						if c, _ := b.sim.Credential("MyProject", "api-user"); c.Certificate != "my-certificate" {
							t.Errorf("the credential is %+v, want my-certificate assigned", c)
						}
					}},
				{"jwk.parse posts to the path without a trailing slash", "POST", "/apiops/projects/MyProject/jwks/parse-from-certificate", "",
					`{"name":"my-jwk","description":"from my-certificate","certificateName":"my-certificate","environmentName":"production","useType":"SIGNATURE","algorithm":"ES256"}`,
					&jobs.JWKParse{ProjectName: "MyProject", JWKName: "my-jwk", Description: "from my-certificate", CertificateName: "my-certificate",
						EnvironmentName: "production", UseType: jobs.JWKSignature, Algorithm: "ES256"}, func(t *testing.T) {
						if _, ok := b.sim.JWK("MyProject", "my-jwk"); !ok {
							t.Error("the JWK does not exist")
						}
					}},
				{"credential.certificate.delete", "DELETE", "/apiops/projects/MyProject/credentials/api-user/certificate/", "", "",
					&jobs.CredentialCertificateDelete{ProjectName: "MyProject", Username: "api-user"}, func(t *testing.T) {
						if c, _ := b.sim.Credential("MyProject", "api-user"); c.Certificate != "" {
							t.Errorf("the credential is %+v, want no certificate", c)
						}
					}},
				{"jwk.delete", "DELETE", "/apiops/projects/MyProject/jwks/my-jwk/", "", "",
					&jobs.JWKDelete{ProjectName: "MyProject", JWKName: "my-jwk"}, func(t *testing.T) {
						if _, ok := b.sim.JWK("MyProject", "my-jwk"); ok {
							t.Error("the JWK still exists")
						}
					}},
			}
			// In order: the deletes undo what the sets made.
			for _, k := range kinds {
				b.sim.ResetLog()
				resp, err := b.client.Execute(context.Background(), k.job, Call{})
				if err != nil || resp.Status != jobs.StatusSucceeded {
					t.Fatalf("%s: Execute = %+v, %v; want succeeded", k.name, resp, err)
				}
				reqs := b.sim.Requests()
				if len(reqs) != 1 {
					t.Fatalf("%s: %d requests, want 1", k.name, len(reqs))
				}
				r := reqs[0]
				got := [4]string{r.Method, r.Path, r.Query.Encode(), r.Body}
				if diff := cmp.Diff([4]string{k.method, k.path, k.query, k.body}, got); diff != "" {
					t.Errorf("%s: request (-want +got):\n%s", k.name, diff)
				}
				if k.body != "" && r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("%s: Content-Type %q, want application/json", k.name, r.Header.Get("Content-Type"))
				}
				k.check(t)
			}
		})
	}
}

func TestNewKindsReportNotFound(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("in "+rev.name, func(t *testing.T) {
			t.Parallel()
			b, _ := keyBundle(t, rev.style)
			for _, k := range []struct {
				name string
				job  jobs.Job
			}{
				{"key.update of a missing key", &jobs.KeyUpdate{ProjectName: "MyProject", KeyName: "nope", KeyFields: jobs.KeyFields{KeyType: jobs.KeyPublic}}},
				{"credential.publickey.set on a missing credential", &jobs.CredentialPublicKeySet{ProjectName: "MyProject", Username: "nope", KeyName: "my-key"}},
				{"credential.publickey.set of a missing key", &jobs.CredentialPublicKeySet{ProjectName: "MyProject", Username: "api-user", KeyName: "nope"}},
				{"credential.certificate.set of a missing certificate", &jobs.CredentialCertificateSet{ProjectName: "MyProject", Username: "api-user", CertificateName: "nope"}},
				{"credential.certificate.delete on a missing credential", &jobs.CredentialCertificateDelete{ProjectName: "MyProject", Username: "nope"}},
				{"jwk.parse from a missing certificate", &jobs.JWKParse{ProjectName: "MyProject", JWKName: "j", CertificateName: "nope", EnvironmentName: "production", UseType: jobs.JWKSignature, Algorithm: "ES256"}},
				{"jwk.delete of a missing JWK", &jobs.JWKDelete{ProjectName: "MyProject", JWKName: "nope"}},
			} {
				_, err := b.client.Execute(context.Background(), k.job, Call{})
				var apiErr *APIError
				if !errors.As(err, &apiErr) || apiErr.StableCode() != CodeNotFound || !errors.Is(err, ErrPermanent) {
					t.Errorf("%s: error %v, want a permanent not_found", k.name, err)
				}
			}
		})
	}
}

// TestLostAnswersOfNewKindsEndAsTheTruth loses the answer of each write
// once; the retry must end as what Apinizer holds.
func TestLostAnswersOfNewKindsEndAsTheTruth(t *testing.T) {
	t.Parallel()
	for _, rev := range revisions {
		t.Run("in "+rev.name, func(t *testing.T) {
			t.Parallel()
			b, id := keyBundle(t, rev.style)
			b.sim.AddCertificate("MyProject", "other-certificate", b.pem)
			parse := &jobs.JWKParse{ProjectName: "MyProject", JWKName: "my-jwk", CertificateName: "my-certificate",
				EnvironmentName: "production", UseType: jobs.JWKSignature, Algorithm: "ES256"}
			for _, k := range []struct {
				name, method string
				job          jobs.Job
				wantCode     string // "" for succeeded
			}{
				{"a repeated key.create fails already_exists: key content cannot be compared", "POST", secretKeyCreate(t, "lost-key", id.Recipient()), CodeAlreadyExists},
				{"a repeated key.update overwrites harmlessly", "PUT", &jobs.KeyUpdate{ProjectName: "MyProject", KeyName: "my-key", KeyFields: jobs.KeyFields{KeyType: jobs.KeyPublic}}, ""},
				{"a repeated credential.publickey.set assigns again", "PUT", &jobs.CredentialPublicKeySet{ProjectName: "MyProject", Username: "api-user", KeyName: "my-key"}, ""},
				{"a repeated credential.certificate.set assigns again", "PUT", &jobs.CredentialCertificateSet{ProjectName: "MyProject", Username: "api-user", CertificateName: "other-certificate"}, ""},
				{"a repeated credential.certificate.delete finds none: the state holds", "DELETE", &jobs.CredentialCertificateDelete{ProjectName: "MyProject", Username: "api-user"}, ""},
				{"a repeated jwk.parse fails already_exists: no JWK can be read back", "POST", parse, CodeAlreadyExists},
				{"a repeated jwk.delete finds it gone", "DELETE", &jobs.JWKDelete{ProjectName: "MyProject", JWKName: "my-jwk"}, ""},
			} {
				b.sim.AddFault(apinizertest.Fault{Method: k.method, PathPrefix: "/apiops/", LoseAnswer: true, Times: 1})
				resp, err := b.client.Execute(context.Background(), k.job, Call{})
				b.sim.ClearFaults()
				if k.wantCode == "" {
					if err != nil || resp.Status != jobs.StatusSucceeded {
						t.Errorf("%s: Execute = %+v, %v; want succeeded", k.name, resp, err)
					}
					continue
				}
				var apiErr *APIError
				if !errors.As(err, &apiErr) || apiErr.StableCode() != k.wantCode {
					t.Errorf("%s: error %v, want %s", k.name, err, k.wantCode)
				}
			}
			if _, err := b.client.Execute(context.Background(), secretKeyCreate(t, "another-key", id.Recipient()), Call{}); err != nil {
				t.Fatal(err)
			}
			_, err := b.client.Execute(context.Background(), secretKeyCreate(t, "another-key", id.Recipient()), Call{PriorAttempts: 1})
			if err == nil || !strings.Contains(err.Error(), "never returns key content") {
				t.Errorf("a key.create after an earlier attempt: error %v, want already_exists saying content cannot be compared", err)
			}
		})
	}
}

func TestKeyMaterialNeverTravelsInClear(t *testing.T) {
	t.Parallel()
	b, id := keyBundle(t, apinizertest.StyleCurrent)
	stranger := newIdentity(t)
	clearJob := secretKeyCreate(t, "k", id.Recipient())
	clearJob.CryptoKeyInfoEnvironmentList[0].Content = secretContent
	for _, k := range []struct {
		name string
		job  jobs.Job
		cfg  func(*Config)
		code string
	}{
		{"a SECRET_KEY in clear fails secret_in_clear", clearJob, nil, CodeSecretInClear},
		{"material encrypted to another recipient is undecryptable", secretKeyCreate(t, "k", stranger.Recipient()), nil, CodeUndecryptable},
		{"a worker without identity cannot decrypt", secretKeyCreate(t, "k", id.Recipient()), func(c *Config) { c.Identities = nil }, CodeUndecryptable},
		{"a clear form that is not base64 is undecryptable", func() jobs.Job {
			j := secretKeyCreate(t, "k", id.Recipient())
			j.CryptoKeyInfoEnvironmentList[0].EncryptedContent = encrypt(t, id.Recipient(), "not base64 at all!")
			return j
		}(), nil, CodeUndecryptable},
	} {
		client := b.client
		if k.cfg != nil {
			cfg := Config{BaseURL: b.sim.URL, Token: func() (string, error) { return testToken, nil }, Retry: fastRetry()}
			k.cfg(&cfg)
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			client = c
		}
		b.sim.ResetLog()
		_, err := client.Execute(context.Background(), k.job, Call{})
		var reqErr *RequestError
		if !errors.As(err, &reqErr) || reqErr.Code() != k.code || !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: error %v, want a permanent %s", k.name, err, k.code)
		}
		if err != nil && strings.Contains(err.Error(), secretContent) {
			t.Errorf("%s: the error holds the clear material", k.name)
		}
		if n := len(b.sim.Requests()); n != 0 {
			t.Errorf("%s: %d calls, want none", k.name, n)
		}
	}
}

func TestAnAnswerEchoingTheKeyIsRedacted(t *testing.T) {
	t.Parallel()
	b, id := keyBundle(t, apinizertest.StyleCurrent)
	b.sim.AddFault(apinizertest.Fault{Method: "POST", Reply: apinizertest.FailureReply(400, "content "+secretContent+" is not accepted")})
	_, err := b.client.Execute(context.Background(), secretKeyCreate(t, "k", id.Recipient()), Call{})
	if err == nil || strings.Contains(err.Error(), secretContent) || !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("error %v: want the echoed material redacted", err)
	}
}

func TestLoadIdentitiesTakesSeveralAndNeverQuotesTheFile(t *testing.T) {
	t.Parallel()
	a, c := newIdentity(t), newIdentity(t)
	dir := t.TempDir()
	good := dir + "/ids"
	writeFile(t, good, "# rotated 2026-12-01\n"+a.String()+"\n"+c.String()+"\n")
	ids, err := LoadIdentities(good)
	if err != nil || len(ids) != 2 {
		t.Fatalf("LoadIdentities = %d identities, %v; want 2", len(ids), err)
	}
	bad := dir + "/bad"
	secretish := strings.Replace(a.String(), "AGE-SECRET-KEY-1", "AGE-SECRET-KEY-9", 1)
	writeFile(t, bad, secretish+"\n")
	if _, err := LoadIdentities(bad); err == nil || strings.Contains(err.Error(), secretish[16:]) {
		t.Errorf("LoadIdentities of a malformed file: %v; want an error that does not quote it", err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
