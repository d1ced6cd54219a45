package apinizertest_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
)

func TestEachRevisionsTexts(t *testing.T) {
	t.Parallel()
	fields, files := certificateFields(testPEM(t))
	fields["certificateName"] = "my-certificate"
	tests := []struct {
		name        string
		call        call
		old, newer  string
		oldStatus   int
		newerStatus int
	}{
		{"a missing project", call{method: "DELETE", path: "/apiops/projects/Nope/keys/k/"},
			`{"error": "not_found", "error_description": "Project(Nope) was not found or user does not have privilege to access it!"}`,
			`{"status": "FAILURE", "resultMessage": "Project (Nope) is not found or user does not have privilege to access it!"}`, 404, 400},
		{"a create of a name in use", call{method: "POST", path: "/apiops/projects/MyProject/certificates/", fields: fields, files: files},
			`{"error": "bad_request", "error_description": "Certificate (name: my-certificate) already exists!"}`,
			`{"status": "FAILURE", "resultMessage": "Certificate (name: my-certificate) is already exist!"}`, 400, 400},
		{"an empty alias", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/",
			fields: map[string]string{"alias": "", "certificateDescription": "d", "environmentList": "production"}, files: files},
			`{"error": "bad_request", "error_description": "alias is required!"}`,
			`{"status": "FAILURE", "resultMessage": "alias value can not be empty!"}`, 400, 400},
		{"no token", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/", token: "-"},
			`{"error": "unauthorized_client", "error_description": "Invalid token"}`,
			`{"status": "FAILURE", "resultMessage": "Empty Key! Client must be authenticated to access this resource."}`, 401, 401},
		{"a wrong token", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/", token: "wrong"},
			`{"error": "unauthorized_client", "error_description": "Invalid token"}`,
			`{"status": "FAILURE", "resultMessage": "Token is not valid!"}`, 401, 401},
	}
	for _, tt := range tests {
		for _, rev := range []struct {
			name   string
			style  apinizertest.ResponseStyle
			status int
			body   string
		}{{"the older revision", apinizertest.StyleClassic, tt.oldStatus, tt.old}, {"the current revision", apinizertest.StyleCurrent, tt.newerStatus, tt.newer}} {
			t.Run(tt.name+" is answered in "+rev.name+"'s words", func(t *testing.T) {
				t.Parallel()
				s := setup(t)
				s.SetStyle(rev.style)
				status, body, err := send(context.Background(), t, s, tt.call)
				if err != nil || status != rev.status {
					t.Fatalf("status = %d (%v), want %d", status, err, rev.status)
				}
				if diff := cmp.Diff(decode(t, rev.body), body); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestPublicKeyRemovalWithoutAKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		style  apinizertest.ResponseStyle
		status int
	}{{"succeeds in the older revision", apinizertest.StyleClassic, 200}, {"is a 400 in the current revision", apinizertest.StyleCurrent, 400}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			s.SetStyle(tt.style)
			s.AddCredential("MyProject", "keyless", false)
			status, body, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/credentials/keyless/publicKey/"})
			if err != nil || status != tt.status {
				t.Fatalf("status = %d %v (%v), want %d", status, body, err, tt.status)
			}
			if n := s.Applied()["credential/MyProject/keyless"]; n != 0 {
				t.Errorf("applied %d, want 0: nothing was removed", n)
			}
		})
	}
}

func TestCurrentRevisionPodsCarryNoDetailOnSuccess(t *testing.T) {
	t.Parallel()
	s := setup(t)
	s.SetStyle(apinizertest.StyleCurrent)
	status, body, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"})
	if err != nil || status != 200 {
		t.Fatalf("status = %d (%v)", status, err)
	}
	want := `{"status": "SUCCESS", "deploymentResult": {"success": true, "responseTime": 13, "detailList": [
		{"envName": "production", "podName": "production-gateway-0", "podIp": "10.0.0.10", "success": true, "responseTime": 12},
		{"envName": "production", "podName": "production-gateway-1", "podIp": "10.0.0.11", "success": true, "responseTime": 13},
		{"envName": "staging", "podName": "staging-gateway-0", "podIp": "10.0.1.10", "success": true, "responseTime": 12},
		{"envName": "staging", "podName": "staging-gateway-1", "podIp": "10.0.1.11", "success": true, "responseTime": 13}]}}`
	if diff := cmp.Diff(decode(t, want), body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestReadOnlyCalls(t *testing.T) {
	t.Parallel()
	s := setup(t)
	pemText := testPEM(t)
	s.AddCertificate("MyProject", "other", pemText)
	block, _ := pem.Decode([]byte(pemText))
	sum := sha1.Sum(block.Bytes)
	want := strings.ToUpper(hex.EncodeToString(sum[:]))

	status, body, err := send(context.Background(), t, s, call{method: "GET", path: "/apiops/projects/MyProject/certificates/other/"})
	if err != nil || status != 200 {
		t.Fatalf("get certificate = %d %v (%v)", status, body, err)
	}
	list := body.(map[string]any)["resultList"].([]any)
	envs := list[0].(map[string]any)["certificateEnvironmentList"].([]any)
	if len(envs) != 2 {
		t.Fatalf("%d environments, want 2", len(envs))
	}
	for _, e := range envs {
		e := e.(map[string]any)
		if e["sha1Thumbprint"] != want || e["subjectDn"] == "" || e["base64EncodedContent"] == "" {
			t.Errorf("environment %v, want thumbprint %s, a subject and the content", e, want)
		}
	}
	if status, body, _ := send(context.Background(), t, s, call{method: "GET", path: "/apiops/projects/MyProject/certificates/none/"}); status != 400 {
		t.Errorf("get of a missing certificate = %d %v, want 400", status, body)
	}

	status, body, err = send(context.Background(), t, s, call{method: "GET", path: "/apiops/projects/"})
	if err != nil || status != 200 || body.(map[string]any)["resultCount"] != float64(1) {
		t.Errorf("list projects = %d %v (%v), want MyProject alone", status, body, err)
	}
	if len(s.Applied()) != 0 || len(s.MaxInFlight()) != 0 {
		t.Errorf("reads counted as changes or in-flight writes: %v %v", s.Applied(), s.MaxInFlight())
	}
}

func TestLoseAnswerAppliesThenDrops(t *testing.T) {
	t.Parallel()
	s := setup(t)
	s.AddFault(apinizertest.Fault{Method: "DELETE", LoseAnswer: true, Times: 1})
	if _, _, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"}); err == nil {
		t.Fatal("the request got an answer, want the connection dropped")
	}
	if s.KeyExists("MyProject", "my-key") || s.Applied()["key/MyProject/my-key"] != 1 {
		t.Errorf("key exists %v, applied %d: want it deleted once", s.KeyExists("MyProject", "my-key"), s.Applied()["key/MyProject/my-key"])
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	s := apinizertest.NewServer(apinizertest.Config{ClientID: "ops", ClientSecret: "pw", TokenTTL: 30 * time.Second, Style: apinizertest.StyleCurrent})
	t.Cleanup(s.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	s.AddProject("MyProject", "production")
	fetch := func(secret string) (int, map[string]any) {
		resp, err := http.PostForm(s.URL+apinizertest.TokenPath, url.Values{"grant_type": {"client_credentials"}, "client_id": {"ops"}, "client_secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}

	status, tok := fetch("pw")
	if status != 200 || tok["token_type"] != "Bearer" || tok["expires_in"] != float64(30) || tok["access_token"] == "" {
		t.Fatalf("token answer %d %v, want a Bearer token for 30s", status, tok)
	}
	access := tok["access_token"].(string)
	if status, body, _ := send(context.Background(), t, s, call{method: "GET", path: "/apiops/projects/", token: access}); status != 200 {
		t.Errorf("an issued token got %d %v, want 200", status, body)
	}
	if status, body, _ := send(context.Background(), t, s, call{method: "GET", path: "/apiops/projects/", token: "made-up"}); status != 401 {
		t.Errorf("a token never issued got %d %v, want 401", status, body)
	}
	s.ExpireTokens()
	status, body, _ := send(context.Background(), t, s, call{method: "GET", path: "/apiops/projects/", token: access})
	if diff := cmp.Diff(decode(t, `{"status": "FAILURE", "resultMessage": "Token was expired!"}`), body); status != 401 || diff != "" {
		t.Errorf("an expired token got %d (-want +got):\n%s", status, diff)
	}
	if status, body := fetch("wrong"); status != 401 || body["resultMessage"] != "Bad credentials" {
		t.Errorf("a wrong secret got %d %v, want 401 Bad credentials", status, body)
	}
	if got := s.TokenFetches(); got != 1 {
		t.Errorf("%d tokens issued, want 1", got)
	}
	for _, r := range s.Requests() {
		if strings.Contains(r.Form["client_secret"], "pw") || strings.Contains(r.Form["client_secret"], "wrong") {
			t.Errorf("the request log holds the client secret: %v", r.Form)
		}
	}
}
