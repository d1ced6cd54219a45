package apinizertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
)

// sendJSON makes a JSON call to s and returns the status and decoded body.
func sendJSON(t *testing.T, s *apinizertest.Server, method, path, body string) (int, any) {
	t.Helper()
	var r *bytes.Reader
	if body != "" {
		r = bytes.NewReader([]byte(body))
	} else {
		r = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

// refusal is an error body in style's envelope.
func refusal(style apinizertest.ResponseStyle, message string) string {
	b, _ := json.Marshal(message)
	if style == apinizertest.StyleCurrent {
		return `{"status":"FAILURE","resultMessage":` + string(b) + `}`
	}
	return `{"error":"bad_request","error_description":` + string(b) + `}`
}

const secretBody = `{"name":"%s","keyType":"SECRET_KEY",%s"cryptoKeyInfoEnvironmentList":[{"environmentName":"production","content":"c2VjcmV0"}]}`

func keyJSON(name, algorithm string) string {
	alg := ""
	if algorithm != "" {
		alg = `"algorithm":"` + algorithm + `",`
	}
	return strings.Replace(strings.Replace(secretBody, "%s", name, 1), "%s", alg, 1)
}

func TestKeyCredentialSecretAndJWKAnswersInBothRevisions(t *testing.T) {
	t.Parallel()
	for _, rev := range []struct {
		name  string
		style apinizertest.ResponseStyle
	}{{"older", apinizertest.StyleClassic}, {"current", apinizertest.StyleCurrent}} {
		t.Run("in the "+rev.name+" revision", func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			s.SetStyle(rev.style)
			s.AddCredential("MyProject", "bare-user", false)
			exists := "Key (name: my-key) already exists! Try update operation if want to change its value."
			noCert := ""
			if rev.style == apinizertest.StyleCurrent {
				exists = "Key (name: my-key) is already exist! Try update operation if want to change its value."
				noCert = refusal(rev.style, "Credential (username: bare-user) has no certificate assigned!")
			}
			for _, c := range []struct {
				name, method, path, body string
				status                   int
				want                     string // "" checks the status only
			}{
				{"a SECRET_KEY without algorithm is refused with the page's words", "POST", "/apiops/projects/MyProject/keys/", keyJSON("k", ""), 400,
					refusal(rev.style, "algorithm is required for SECRET_KEY! Supported values: AES, DES, DESede, RSA")},
				{"an algorithm in the wrong case is refused", "POST", "/apiops/projects/MyProject/keys/", keyJSON("k", "desede"), 400,
					refusal(rev.style, "Invalid algorithm: desede! Supported values: AES, DES, DESede, RSA")},
				{"a key name in use is refused", "POST", "/apiops/projects/MyProject/keys/", keyJSON("my-key", "AES"), 400, refusal(rev.style, exists)},
				{"a key is created", "POST", "/apiops/projects/MyProject/keys/", keyJSON("k", "DESede"), 200, ""},
				{"get-key never returns the content", "GET", "/apiops/projects/MyProject/keys/k/", "", 200, ""},
				{"a missing key cannot be updated", "PUT", "/apiops/projects/MyProject/keys/nope/", `{"keyType":"PUBLIC_KEY"}`, 400, refusal(rev.style, "Key (name: nope) is not found!")},
				{"only a PUBLIC_KEY can be a credential's public key", "PUT", "/apiops/projects/MyProject/credentials/api-user/publicKey/k/", "", 400,
					refusal(rev.style, "Key (name: k) is not a PUBLIC_KEY!")},
				{"a missing certificate cannot be assigned", "PUT", "/apiops/projects/MyProject/credentials/api-user/certificate/nope/", "", 400,
					refusal(rev.style, "Certificate (name: nope) is not found!")},
				{"removing a certificate that is not assigned", "DELETE", "/apiops/projects/MyProject/credentials/bare-user/certificate/", "", map[bool]int{true: 400, false: 200}[noCert != ""], noCert},
				{"parse-from-certificate with a trailing slash is not the parse path", "POST", "/apiops/projects/MyProject/jwks/parse-from-certificate/", `{}`, 405, ""},
				{"parse-from-certificate takes an algorithm fitting the certificate's key", "POST", "/apiops/projects/MyProject/jwks/parse-from-certificate",
					`{"name":"j","certificateName":"my-certificate","environmentName":"production","useType":"SIGNATURE","algorithm":"RS256"}`, 400,
					refusal(rev.style, "Algorithm (RS256) is not valid for key type EC and use SIGNATURE!")},
				{"a JWK is parsed", "POST", "/apiops/projects/MyProject/jwks/parse-from-certificate",
					`{"name":"j","certificateName":"my-certificate","environmentName":"production","useType":"SIGNATURE","algorithm":"ES256"}`, 200, ""},
				{"a JWK name in use is refused", "POST", "/apiops/projects/MyProject/jwks/parse-from-certificate",
					`{"name":"j","certificateName":"my-certificate","environmentName":"production","useType":"SIGNATURE","algorithm":"ES256"}`, 400,
					refusal(rev.style, map[bool]string{true: "JWK (name: j) is already exist!", false: "JWK (name: j) already exists!"}[rev.style == apinizertest.StyleCurrent])},
				{"a JWK is deleted", "DELETE", "/apiops/projects/MyProject/jwks/j/", "", 200, ""},
				{"a missing JWK cannot be deleted", "DELETE", "/apiops/projects/MyProject/jwks/j/", "", 400, refusal(rev.style, "JWK (name: j) is not found!")},
			} {
				status, body := sendJSON(t, s, c.method, c.path, c.body)
				if status != c.status {
					t.Errorf("%s: status %d, want %d (%v)", c.name, status, c.status, body)
					continue
				}
				if c.want != "" {
					if diff := cmp.Diff(decode(t, c.want), body); diff != "" {
						t.Errorf("%s: body (-want +got):\n%s", c.name, diff)
					}
				}
				if c.method == "GET" {
					if raw, _ := json.Marshal(body); strings.Contains(string(raw), "c2VjcmV0") || !strings.Contains(string(raw), `"keyType":"SECRET_KEY"`) {
						t.Errorf("%s: %s", c.name, raw)
					}
				}
			}
			if k, ok := s.Key("MyProject", "k"); !ok || k.Algorithm != "DESede" || k.Environments[0].ContentSHA256 == "" {
				t.Errorf("key k = %+v, %v", k, ok)
			}
		})
	}
}
