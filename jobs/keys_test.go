package jobs_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// exampleArmor stands for an age file: Decode checks the armour, never the
// ciphertext, which only the worker's identity opens.
const exampleArmor = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBleGFtcGxl\n-----END AGE ENCRYPTED FILE-----\n"

// examplePublicKey is a PUBLIC_KEY's content: base64 of PEM text.
var examplePublicKey = base64.StdEncoding.EncodeToString([]byte("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"))

func init() {
	exampleBodies[jobs.SubjectKeyCreate] = `{
  "jobId": "create-2026-11-23-my-key",
  "projectName": "MyProject",
  "keyName": "my-key",
  "description": "Signing key",
  "keyType": "SECRET_KEY",
  "algorithm": "AES",
  "cryptoKeyInfoEnvironmentList": [
    {"environmentName": "production", "encryptedContent": ` + fmt.Sprintf("%q", exampleArmor) + `, "alias": "prod-key"}
  ]
}`
	exampleBodies[jobs.SubjectKeyUpdate] = `{
  "jobId": "update-2026-11-23-my-key",
  "projectName": "MyProject",
  "keyName": "my-key",
  "keyType": "PUBLIC_KEY",
  "cryptoKeyInfoEnvironmentList": [
    {"environmentName": "production", "content": "` + examplePublicKey + `"}
  ],
  "jwkUpdateAction": "UPDATE",
  "updateScope": "SAME_PROJECT"
}`
	exampleBodies[jobs.SubjectCredentialPublicKeySet] = `{"jobId": "assign-2026-11-23-api-user", "projectName": "MyProject", "username": "api-user", "keyName": "my-public-key"}`
	exampleBodies[jobs.SubjectCredentialCertificateSet] = `{"jobId": "assign-cert-2026-11-23-api-user", "projectName": "MyProject", "username": "api-user", "certificateName": "my-certificate"}`
	exampleBodies[jobs.SubjectCredentialCertificateDelete] = `{"jobId": "unassign-cert-2026-11-23-api-user", "projectName": "MyProject", "username": "api-user"}`
	exampleBodies[jobs.SubjectJWKParse] = `{
  "jobId": "parse-2026-11-23-my-jwk",
  "projectName": "MyProject",
  "jwkName": "my-jwk",
  "description": "JWK from certificate",
  "certificateName": "my-certificate",
  "environmentName": "production",
  "useType": "SIGNATURE",
  "algorithm": "RS256"
}`
	exampleBodies[jobs.SubjectJWKDelete] = `{"jobId": "delete-2026-11-23-my-jwk", "projectName": "MyProject", "jwkName": "my-jwk"}`
}

// newKindExample is exampleJob for the key, credential secret and JWK kinds.
func newKindExample(subject string) jobs.Job {
	switch subject {
	case jobs.SubjectKeyCreate:
		return &jobs.KeyCreate{JobID: "create-2026-11-23-my-key", ProjectName: "MyProject", KeyName: "my-key",
			KeyFields: jobs.KeyFields{Description: "Signing key", KeyType: jobs.KeySecret, Algorithm: jobs.AlgorithmAES,
				CryptoKeyInfoEnvironmentList: []jobs.KeyEnvironment{{EnvironmentName: "production", EncryptedContent: exampleArmor, Alias: "prod-key"}}}}
	case jobs.SubjectKeyUpdate:
		return &jobs.KeyUpdate{JobID: "update-2026-11-23-my-key", ProjectName: "MyProject", KeyName: "my-key",
			KeyFields: jobs.KeyFields{KeyType: jobs.KeyPublic,
				CryptoKeyInfoEnvironmentList: []jobs.KeyEnvironment{{EnvironmentName: "production", Content: examplePublicKey}}},
			JWKUpdateAction: jobs.JWKUpdateUpdate, UpdateScope: jobs.UpdateScopeSameProject}
	case jobs.SubjectCredentialPublicKeySet:
		return &jobs.CredentialPublicKeySet{JobID: "assign-2026-11-23-api-user", ProjectName: "MyProject", Username: "api-user", KeyName: "my-public-key"}
	case jobs.SubjectCredentialCertificateSet:
		return &jobs.CredentialCertificateSet{JobID: "assign-cert-2026-11-23-api-user", ProjectName: "MyProject", Username: "api-user", CertificateName: "my-certificate"}
	case jobs.SubjectCredentialCertificateDelete:
		return &jobs.CredentialCertificateDelete{JobID: "unassign-cert-2026-11-23-api-user", ProjectName: "MyProject", Username: "api-user"}
	case jobs.SubjectJWKParse:
		return &jobs.JWKParse{JobID: "parse-2026-11-23-my-jwk", ProjectName: "MyProject", JWKName: "my-jwk", Description: "JWK from certificate",
			CertificateName: "my-certificate", EnvironmentName: "production", UseType: jobs.JWKSignature, Algorithm: "RS256"}
	case jobs.SubjectJWKDelete:
		return &jobs.JWKDelete{JobID: "delete-2026-11-23-my-jwk", ProjectName: "MyProject", JWKName: "my-jwk"}
	}
	return nil
}

// env returns an edit of the first cryptoKeyInfoEnvironmentList entry.
func env(key string, v any) func(map[string]any) {
	return func(m map[string]any) {
		list := m["cryptoKeyInfoEnvironmentList"].([]any)
		e := list[0].(map[string]any)
		if v == nil {
			delete(e, key)
			return
		}
		e[key] = v
	}
}

// keyDecodeCases are decodeCases for the new kinds: one per rule.
func keyDecodeCases(tb testing.TB) []decodeCase {
	tb.Helper()
	const (
		kc   = jobs.SubjectKeyCreate
		ku   = jobs.SubjectKeyUpdate
		pks  = jobs.SubjectCredentialPublicKeySet
		cs   = jobs.SubjectCredentialCertificateSet
		cd   = jobs.SubjectCredentialCertificateDelete
		jp   = jobs.SubjectJWKParse
		jd   = jobs.SubjectJWKDelete
		list = "cryptoKeyInfoEnvironmentList"
	)
	fx := testPEM(tb)
	secretB64 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	privB64 := base64.StdEncoding.EncodeToString([]byte(fx.pkcs8Key))
	id := func(subject string) string { return exampleJob(tb, subject).ID() }
	c := func(name, subject string, want error, field string, edits ...func(map[string]any)) decodeCase {
		return decodeCase{name: name, subject: subject, body: editBody(tb, subject, edits...), want: want, field: field, jobID: id(subject)}
	}
	noID := func(dc decodeCase) decodeCase { dc.jobID = ""; return dc }
	return []decodeCase{
		c("key.create with SECRET_KEY content in clear is refused as secret_in_clear", kc, jobs.ErrSecretInClear, list+"/0/content", env("content", secretB64)),
		c("key.create with PRIVATE_KEY content in clear is refused as secret_in_clear", kc, jobs.ErrSecretInClear, list+"/0/content",
			set("keyType", "PRIVATE_KEY"), unset("algorithm"), env("content", privB64), env("encryptedContent", nil)),
		c("key.update with a private key in a PUBLIC_KEY's content is refused as secret_in_clear", ku, jobs.ErrSecretInClear, list+"/0/content", env("content", privB64)),
		noID(c("clear material is refused before a missing jobId", kc, jobs.ErrSecretInClear, list+"/0/content", unset("jobId"), env("content", secretB64))),
		c("key.create without keyType is refused", kc, jobs.ErrRequired, "keyType", unset("keyType")),
		c("key.update without keyType is refused", ku, jobs.ErrRequired, "keyType", unset("keyType"), env("content", nil)),
		c("key.create with an unknown keyType is refused", kc, jobs.ErrInvalidValue, "keyType", set("keyType", "SYMMETRIC")),
		c("key.create with a lower-case keyType is refused", kc, jobs.ErrInvalidValue, "keyType", set("keyType", "secret_key")),
		c("key.create of a SECRET_KEY without algorithm is refused", kc, jobs.ErrRequired, "algorithm", unset("algorithm")),
		c("key.create with algorithm desede in the wrong case is refused", kc, jobs.ErrInvalidValue, "algorithm", set("algorithm", "desede")),
		c("key.create with an unknown algorithm is refused", kc, jobs.ErrInvalidValue, "algorithm", set("algorithm", "ChaCha20")),
		c("key.update of a PUBLIC_KEY with an algorithm is refused", ku, jobs.ErrInvalidValue, "algorithm", set("algorithm", "RSA")),
		c("key.create without environments is refused", kc, jobs.ErrRequired, list, unset(list)),
		c("key.create with an empty environment list is refused", kc, jobs.ErrInvalidValue, list, set(list, []any{})),
		c("key.create with an entry without environmentName is refused", kc, jobs.ErrRequired, list+"/0/environmentName", env("environmentName", nil)),
		c("key.create with an environmentName holding a comma is refused", kc, jobs.ErrInvalidValue, list+"/0/environmentName", env("environmentName", "a,b")),
		c("key.create with a SECRET_KEY without encryptedContent is refused", kc, jobs.ErrRequired, list+"/0/encryptedContent", env("encryptedContent", nil)),
		c("key.create with encryptedContent that is not age armour is refused", kc, jobs.ErrInvalidValue, list+"/0/encryptedContent", env("encryptedContent", "c2VjcmV0")),
		c("key.update of a PUBLIC_KEY without content is refused", ku, jobs.ErrRequired, list+"/0/content", env("content", nil)),
		c("key.update of a PUBLIC_KEY whose content is not base64 is refused", ku, jobs.ErrInvalidValue, list+"/0/content", env("content", "not base64!")),
		c("key.update of a PUBLIC_KEY with encryptedContent is refused", ku, jobs.ErrInvalidValue, list+"/0/encryptedContent", env("encryptedContent", exampleArmor)),
		c("key.update with an unknown jwkUpdateAction is refused", ku, jobs.ErrInvalidValue, "jwkUpdateAction", set("jwkUpdateAction", "KEEP")),
		c("key.update with updateScope but no UPDATE is refused", ku, jobs.ErrInvalidValue, "updateScope", unset("jwkUpdateAction")),
		c("key.create with a keyName that changes the path is refused", kc, jobs.ErrInvalidValue, "keyName", set("keyName", "../k")),
		// The marshalled body has jobId after the list: the walk stops first.
		noID(c("key.create with a misspelled entry member is refused", kc, jobs.ErrUnknownField, list+"/0/Alias", env("Alias", "x"))),
		noID(c("clear material under a misspelled name is still secret_in_clear", kc, jobs.ErrSecretInClear, list+"/0/content", env("Content", secretB64))),
		c("key.update with content but no keyType is secret_in_clear: the material may be secret", ku, jobs.ErrSecretInClear, list+"/0/content", unset("keyType")),
		c("credential.publickey.set without keyName is refused", pks, jobs.ErrRequired, "keyName", unset("keyName")),
		c("credential.publickey.set without username is refused", pks, jobs.ErrRequired, "username", unset("username")),
		c("credential.certificate.set without certificateName is refused", cs, jobs.ErrRequired, "certificateName", unset("certificateName")),
		c("credential.certificate.set with a certificateName holding a slash is refused", cs, jobs.ErrInvalidValue, "certificateName", set("certificateName", "a/b")),
		c("credential.certificate.delete without username is refused", cd, jobs.ErrRequired, "username", unset("username")),
		c("jwk.parse without jwkName is refused", jp, jobs.ErrRequired, "jwkName", unset("jwkName")),
		c("jwk.parse without certificateName is refused", jp, jobs.ErrRequired, "certificateName", unset("certificateName")),
		c("jwk.parse without environmentName is refused", jp, jobs.ErrRequired, "environmentName", unset("environmentName")),
		c("jwk.parse without useType is refused", jp, jobs.ErrRequired, "useType", unset("useType")),
		c("jwk.parse with an unknown useType is refused", jp, jobs.ErrInvalidValue, "useType", set("useType", "signature")),
		c("jwk.parse without algorithm is refused", jp, jobs.ErrRequired, "algorithm", unset("algorithm")),
		c("jwk.parse with a key type for algorithm is refused", jp, jobs.ErrInvalidValue, "algorithm", set("algorithm", "RSA")),
		c("jwk.delete without jwkName is refused", jd, jobs.ErrRequired, "jwkName", unset("jwkName")),
	}
}

func TestSecretInClearNeverQuotesTheMaterial(t *testing.T) {
	t.Parallel()
	const material = "UkVDT0dOSVNBQkxFLVNFQ1JFVA=="
	body := editBody(t, jobs.SubjectKeyCreate, env("content", material))
	_, err := jobs.Decode(jobs.SubjectKeyCreate, nil, body)
	if err == nil {
		t.Fatal("Decode accepted clear SECRET_KEY material")
	}
	if strings.Contains(err.Error(), material) {
		t.Errorf("the error quotes the material: %v", err)
	}
	if !strings.Contains(err.Error(), "purge") {
		t.Errorf("the error does not tell the operator to purge the stream: %v", err)
	}
}

func TestCredentialSecretsBelongToTheCredential(t *testing.T) {
	t.Parallel()
	want := exampleJob(t, jobs.SubjectCredentialDelete).Resource()
	for _, s := range []string{jobs.SubjectCredentialPublicKeySet, jobs.SubjectCredentialPublicKeyDelete, jobs.SubjectCredentialCertificateSet, jobs.SubjectCredentialCertificateDelete} {
		if got := exampleJob(t, s).Resource(); got != want {
			t.Errorf("%s resource = %v, want the credential's %v", s, got, want)
		}
	}
	if got, want := exampleJob(t, jobs.SubjectKeyCreate).Resource(), exampleJob(t, jobs.SubjectKeyDelete).Resource(); got != want {
		t.Errorf("key.create resource = %v, want key.delete's %v", got, want)
	}
}
