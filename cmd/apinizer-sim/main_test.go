package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs the command on a free port and returns its base URL. The
// command is stopped, and its error checked, at cleanup.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, stdout := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), stdout, io.Discard)
		stdout.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
}

func do(t *testing.T, method, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestServesTheDefaultSeedAndControlEndpoints(t *testing.T) {
	base := start(t, "--token", "tok")
	defer http.DefaultClient.CloseIdleConnections()

	if status, _ := do(t, "GET", base+"/healthz", ""); status != 200 {
		t.Errorf("/healthz = %d, want 200", status)
	}
	if status, _ := do(t, "DELETE", base+"/apiops/projects/MyProject/keys/my-key/", "wrong"); status != 401 {
		t.Errorf("a wrong token got %d, want 401", status)
	}
	if status, body := do(t, "DELETE", base+"/apiops/projects/MyProject/credentials/api-user/publicKey/", "tok"); status != 200 {
		t.Errorf("public key delete = %d %s, want 200", status, body)
	}

	_, body := do(t, "GET", base+"/_sim/requests", "")
	var reqs []apinizertest.Request
	if err := json.Unmarshal(body, &reqs); err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 {
		t.Fatalf("request log has %d entries, want 2", len(reqs))
	}
	for _, r := range reqs {
		if got := r.Header.Get("Authorization"); got != "REDACTED" {
			t.Errorf("Authorization in the log = %q, want REDACTED", got)
		}
	}

	_, body = do(t, "GET", base+"/_sim/state", "")
	var state apinizertest.State
	if err := json.Unmarshal(body, &state); err != nil {
		t.Fatal(err)
	}
	want := apinizertest.State{
		Projects: []apinizertest.ProjectState{{
			Name:         "MyProject",
			Environments: []string{"production", "staging"},
			Certificates: []apinizertest.Certificate{{Name: "my-certificate", Alias: "my-certificate", Environments: []string{"production", "staging"}, Revision: 1}},
			Keys:         []string{"my-key"},
			Credentials:  []apinizertest.Credential{{Username: "api-user", HasPublicKey: false}},
		}},
		Applied:     map[string]int{"credential/MyProject/api-user": 1},
		MaxInFlight: map[string]int{"credential/MyProject/api-user": 1, "key/MyProject/my-key": 1},
	}
	if diff := cmp.Diff(want, state); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}

func TestSeedFileReplacesTheDefault(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "seed.json")
	err := os.WriteFile(seed, []byte(`{"projects": [{"name": "Other", "environments": ["dev"], "keys": ["k1"]}]}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	base := start(t, "--seed", seed, "--style", "pods")
	defer http.DefaultClient.CloseIdleConnections()

	status, body := do(t, "DELETE", base+"/apiops/projects/Other/keys/k1/", "any")
	if status != 200 || !strings.Contains(string(body), `"status":"SUCCESS"`) {
		t.Errorf("key delete = %d %s, want 200 in the pods style", status, body)
	}
	if status, body := do(t, "DELETE", base+"/apiops/projects/MyProject/keys/my-key/", "any"); status != 400 {
		t.Errorf("the default project answered %d %s, want 400: it is not seeded", status, body)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"--style", "fancy"},
		{"--seed", filepath.Join(t.TempDir(), "missing.json")},
		{"--no-such-flag"},
		{"extra"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}

func TestClientCredentialsIssueShortLivedTokens(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := start(t, "--style", "new", "--client-id", "ops", "--client-secret-file", secret, "--token-ttl", "1h")
	defer http.DefaultClient.CloseIdleConnections()

	resp, err := http.PostForm(base+"/apiops/auth/token", map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {"ops"}, "client_secret": {"s3cret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 {
		t.Fatalf("token answer %d %+v (%v), want 200 with a Bearer token for 3600s", resp.StatusCode, tok, err)
	}
	if status, body := do(t, "GET", base+"/apiops/projects/", tok.AccessToken); status != 200 || !strings.Contains(string(body), `"MyProject"`) {
		t.Errorf("list projects with the issued token = %d %s, want 200 naming MyProject", status, body)
	}
	if status, body := do(t, "GET", base+"/apiops/projects/", "made-up"); status != 401 || !strings.Contains(string(body), "Token is not valid!") {
		t.Errorf("a made-up token got %d %s, want 401 Token is not valid!", status, body)
	}
	_, body := do(t, "GET", base+"/_sim/requests", "")
	if strings.Contains(string(body), "s3cret") {
		t.Errorf("the request log holds the client secret: %s", body)
	}
}

func TestRunRejectsClientIDWithoutSecret(t *testing.T) {
	if err := run(context.Background(), []string{"--client-id", "ops"}, io.Discard, io.Discard); err == nil {
		t.Error("--client-id without --client-secret-file succeeded, want an error")
	}
}

func TestTokenFileIsTheToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("file-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := start(t, "--token-file", file)
	defer http.DefaultClient.CloseIdleConnections()
	if status, _ := do(t, "DELETE", base+"/apiops/projects/MyProject/keys/my-key/", "wrong"); status != 401 {
		t.Errorf("a wrong token got %d, want 401", status)
	}
	if status, body := do(t, "DELETE", base+"/apiops/projects/MyProject/keys/my-key/", "file-tok"); status != 200 {
		t.Errorf("the file's token got %d %s, want 200", status, body)
	}
}
