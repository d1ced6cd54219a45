package dlq

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

const (
	keyLine  = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
	certPEM  = "-----BEGIN CERTIFICATE-----\nMIIBcertificatebody\n-----END CERTIFICATE-----\n"
	pkcs8Key = "-----BEGIN PRIVATE KEY-----\n" + keyLine + "\n-----END PRIVATE KEY-----\n"
)

func TestNewRecordCutsPrivateKeysAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	jsonJob := func(pem string) string {
		b, _ := json.Marshal(map[string]any{"jobId": "j", "projectName": "P", "pemEncodedFile": pem})
		return string(b)
	}
	tests := []struct {
		name     string
		body     string
		redacted bool
		keep     []string // what must still be in the payload
	}{
		{"a PKCS#8 key after the certificate is cut, the certificate kept", jsonJob(certPEM + pkcs8Key), true, []string{"MIIBcertificatebody", RedactedKey, `"jobId":"j"`}},
		{"an RSA key alone is cut", jsonJob(strings.ReplaceAll(pkcs8Key, "PRIVATE", "RSA PRIVATE")), true, []string{RedactedKey}},
		{"a key with no END line is cut to the end of its string", jsonJob(certPEM + "-----BEGIN EC PRIVATE KEY-----\n" + keyLine), true, []string{"MIIBcertificatebody"}},
		{"a key hidden behind JSON escapes is cut", strings.ReplaceAll(jsonJob(pkcs8Key), "-----", `\u002d\u002d\u002d\u002d\u002d`), true, []string{RedactedKey}},
		{"a lower-case block is cut", jsonJob(strings.ToLower(pkcs8Key)), true, nil},
		{"a body that is not JSON is searched as text", "garbage " + pkcs8Key + " more", true, []string{"garbage", "more"}},
		{"a job with no key is kept byte for byte", jsonJob(certPEM), false, []string{jsonJob(certPEM)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewRecord("apiops.certificate.update", nil, []byte(tt.body), ReasonInvalid)
			if strings.Contains(strings.ToLower(r.Payload), strings.ToLower(keyLine)) || holdsPrivateKey(r.Payload) {
				t.Errorf("payload still holds the key: %s", r.Payload)
			}
			if r.Redacted != tt.redacted {
				t.Errorf("Redacted = %t, want %t", r.Redacted, tt.redacted)
			}
			for _, k := range tt.keep {
				if !strings.Contains(r.Payload, k) {
					t.Errorf("payload %s lost %q", r.Payload, k)
				}
			}
			if r.Reason != ReasonInvalid || r.PayloadSize != len(tt.body) {
				t.Errorf("reason %q, payload size %d; want %q, %d", r.Reason, r.PayloadSize, ReasonInvalid, len(tt.body))
			}
		})
	}
}

func TestNewRecordDropsAHeaderCarryingAPrivateKey(t *testing.T) {
	t.Parallel()
	h := nats.Header{}
	h.Set("X-Note", pkcs8Key)
	h.Set("X-Kept", "yes")
	r := NewRecord("apiops.key.delete", h, []byte(`{}`), ReasonInvalid)
	if _, ok := r.Headers["X-Note"]; ok {
		t.Errorf("headers %v keep the private key", r.Headers)
	}
	if r.Headers["X-Kept"] == nil {
		t.Errorf("headers %v lost an innocent header", r.Headers)
	}
}
