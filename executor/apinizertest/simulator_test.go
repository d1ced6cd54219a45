package apinizertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const token = "sim-token"

// setup starts a simulator with MyProject (production, staging),
// my-certificate, my-key and api-user with a public key.
func setup(t testing.TB) *apinizertest.Server {
	t.Helper()
	s := apinizertest.NewServer(apinizertest.Config{Token: token})
	t.Cleanup(s.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	s.AddProject("MyProject", "production", "staging")
	s.AddCertificate("MyProject", "my-certificate", testPEM(t))
	s.AddKey("MyProject", "my-key")
	s.AddCredential("MyProject", "api-user", true)
	return s
}

func testPEM(t testing.TB) string {
	t.Helper()
	p, err := selfsigned.PEM("sim test")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// call is one request to the simulator.
type call struct {
	method, path string
	token        string            // "-" sends no Authorization header
	fields       map[string]string // multipart text fields
	files        map[string]string // multipart file parts
}

// send makes c against s and returns the status and the decoded JSON body
// (nil if the body is not JSON).
func send(ctx context.Context, t testing.TB, s *apinizertest.Server, c call) (int, any, error) {
	t.Helper()
	var body io.Reader
	contentType := ""
	if c.fields != nil || c.files != nil {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for k, v := range c.fields {
			_ = w.WriteField(k, v)
		}
		for k, v := range c.files {
			fw, _ := w.CreateFormFile(k, "cert.pem")
			_, _ = io.WriteString(fw, v)
		}
		_ = w.Close()
		body, contentType = &buf, w.FormDataContentType()
	}
	req, err := http.NewRequestWithContext(ctx, c.method, s.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch c.token {
	case "-":
	case "":
		req.Header.Set("Authorization", "Bearer "+token)
	default:
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var decoded any
	if json.Unmarshal(raw, &decoded) != nil {
		decoded = string(raw)
	}
	return resp.StatusCode, decoded, nil
}

// decode turns a JSON literal into the shape send returns.
func decode(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON in test: %v", err)
	}
	return v
}

func certificateFields(pemText string) (map[string]string, map[string]string) {
	return map[string]string{
			"alias": "updated-cert-alias", "certificateDescription": "Updated SSL certificate",
			"environmentList": "production,staging",
		},
		map[string]string{"pemEncodedFile": pemText}
}

func TestAnswersAsTheReferencePages(t *testing.T) {
	t.Parallel()
	pemText := testPEM(t)
	fields, files := certificateFields(pemText)
	createFields := map[string]string{"certificateName": "new-cert", "alias": "a", "certificateDescription": "d", "environmentList": "staging"}
	deployed := `{"success": true, "deploymentResult": {"success": true, "message": "Deployment completed successfully", "environmentResults": [
		{"environmentName": "production", "success": true, "message": "Deployed successfully"},
		{"environmentName": "staging", "success": true, "message": "Deployed successfully"}]}}`
	undeployed := strings.NewReplacer("Deploy", "Undeploy").Replace(deployed)
	tests := []struct {
		name       string
		call       call
		wantStatus int
		wantBody   string
	}{
		{"an update deploys to the job's environments", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/?jwkUpdateAction=UPDATE&updateScope=SAME_PROJECT", fields: fields, files: files}, 200, deployed},
		{"a create deploys to its environments", call{method: "POST", path: "/apiops/projects/MyProject/certificates/", fields: createFields, files: files}, 200,
			`{"success": true, "deploymentResult": {"success": true, "message": "Deployment completed successfully", "environmentResults": [
			{"environmentName": "staging", "success": true, "message": "Deployed successfully"}]}}`},
		{"a certificate delete undeploys everywhere", call{method: "DELETE", path: "/apiops/projects/MyProject/certificates/my-certificate/?jwkDeleteAction=DELETE"}, 200, undeployed},
		{"a key delete undeploys everywhere", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"}, 200, undeployed},
		{"a public key delete redeploys the credential", call{method: "DELETE", path: "/apiops/projects/MyProject/credentials/api-user/publicKey/"}, 200, deployed},
		{"a credential delete undeploys everywhere", call{method: "DELETE", path: "/apiops/projects/MyProject/credentials/api-user/"}, 200, undeployed},
		{"a bad token is 401", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/", token: "wrong"}, 401,
			`{"error": "unauthorized_client", "error_description": "Invalid token"}`},
		{"a missing token is 401", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/", token: "-"}, 401,
			`{"error": "unauthorized_client", "error_description": "Invalid token"}`},
		{"an unknown project is 404", call{method: "DELETE", path: "/apiops/projects/Nope/keys/my-key/"}, 404,
			`{"error": "not_found", "error_description": "Project(Nope) was not found or user does not have privilege to access it!"}`},
		{"a missing certificate is 400", call{method: "DELETE", path: "/apiops/projects/MyProject/certificates/nope/"}, 400,
			`{"error": "bad_request", "error_description": "Certificate (name: nope) is not found!"}`},
		{"a missing key is 400", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/nope/"}, 400,
			`{"error": "bad_request", "error_description": "Key (name: nope) is not found!"}`},
		{"a missing credential is 400", call{method: "DELETE", path: "/apiops/projects/MyProject/credentials/nope/publicKey/"}, 400,
			`{"error": "bad_request", "error_description": "Credential (username: nope) was not found!"}`},
		{"an update of a missing certificate is 400", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/nope/", fields: fields, files: files}, 400,
			`{"error": "bad_request", "error_description": "Certificate (name: nope) is not found!"}`},
		{"a create of an existing certificate is 400", call{method: "POST", path: "/apiops/projects/MyProject/certificates/",
			fields: map[string]string{"certificateName": "my-certificate", "alias": "a", "certificateDescription": "d", "environmentList": "staging"}, files: files}, 400,
			`{"error": "bad_request", "error_description": "Certificate (name: my-certificate) already exists!"}`},
		{"an update without alias is 400", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/",
			fields: map[string]string{"certificateDescription": "d", "environmentList": "staging"}, files: files}, 400,
			`{"error": "bad_request", "error_description": "alias is required!"}`},
		{"an update whose file part has another name is 400", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/",
			fields: fields, files: map[string]string{"file": pemText}}, 400,
			`{"error": "bad_request", "error_description": "pemEncodedFile is required as a file part!"}`},
		{"an update with a PEM sent as a text field is 400", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/",
			fields: map[string]string{"alias": "a", "certificateDescription": "d", "environmentList": "staging", "pemEncodedFile": pemText}}, 400,
			`{"error": "bad_request", "error_description": "pemEncodedFile is required as a file part!"}`},
		{"an update with an unknown environment is 400", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/",
			fields: map[string]string{"alias": "a", "certificateDescription": "d", "environmentList": "qa"}, files: files}, 400,
			`{"error": "bad_request", "error_description": "Environment (name: qa) was not found!"}`},
		{"an update with a non-certificate file is 400", call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/",
			fields: fields, files: map[string]string{"pemEncodedFile": "hello"}}, 400,
			`{"error": "bad_request", "error_description": "pemEncodedFile is not a PEM encoded certificate!"}`},
		{"an invalid jwkDeleteAction is 400", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/?jwkDeleteAction=KEEP"}, 400,
			`{"error": "bad_request", "error_description": "Invalid value for jwkDeleteAction: KEEP"}`},
		{"a path without the trailing slash is 404", call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key"}, 404,
			`{"status": 404, "error": "Not Found", "path": "/apiops/projects/MyProject/keys/my-key"}`},
		{"a wrong method is 405", call{method: "POST", path: "/apiops/projects/MyProject/keys/my-key/"}, 405,
			`{"status": 405, "error": "Method Not Allowed", "path": "/apiops/projects/MyProject/keys/my-key/"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			status, body, err := send(context.Background(), t, s, tt.call)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			if diff := cmp.Diff(decode(t, tt.wantBody), body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodsStyle(t *testing.T) {
	t.Parallel()
	s := setup(t)
	s.SetStyle(apinizertest.StylePods)
	s.FailEnvironment("MyProject", "staging", true)

	status, body, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/credentials/api-user/"})
	if err != nil || status != 200 {
		t.Fatalf("status = %d, err = %v", status, err)
	}
	want := `{"status": "SUCCESS", "deploymentResult": {"success": false, "message": "Undeployment completed with errors", "detailList": [
		{"envName": "production", "podName": "production-gateway-0", "podIp": "10.0.0.10", "success": true, "detail": "Undeployed successfully", "responseTime": 12},
		{"envName": "production", "podName": "production-gateway-1", "podIp": "10.0.0.11", "success": true, "detail": "Undeployed successfully", "responseTime": 13},
		{"envName": "staging", "podName": "staging-gateway-0", "podIp": "10.0.1.10", "success": false, "detail": "Undeployment failed: gateway did not respond", "responseTime": 12},
		{"envName": "staging", "podName": "staging-gateway-1", "podIp": "10.0.1.11", "success": true, "detail": "Undeployed successfully", "responseTime": 13}]}}`
	if diff := cmp.Diff(decode(t, want), body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	status, body, err = send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/Nope/keys/k/"})
	if err != nil || status != 400 {
		t.Fatalf("status = %d, err = %v; want 400 for a missing project", status, err)
	}
	if diff := cmp.Diff(decode(t, `{"status": "FAILURE", "resultMessage": "Project(Nope) was not found or user does not have privilege to access it!"}`), body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestStateChangesAndRequestLog(t *testing.T) {
	t.Parallel()
	s := setup(t)
	pemText := testPEM(t)
	fields, files := certificateFields(pemText)
	path := "/apiops/projects/MyProject/certificates/my-certificate/"
	for range 2 {
		if status, body, err := send(context.Background(), t, s, call{method: "PUT", path: path + "?jwkUpdateAction=NULLIFY", fields: fields, files: files}); status != 200 || err != nil {
			t.Fatalf("update = %d %v %v", status, body, err)
		}
	}
	got, ok := s.Certificate("MyProject", "my-certificate")
	want := apinizertest.Certificate{
		Name: "my-certificate", Alias: "updated-cert-alias", Description: "Updated SSL certificate",
		Environments: []string{"production", "staging"}, PEM: pemText, Revision: 3,
	}
	if diff := cmp.Diff(want, got); !ok || diff != "" {
		t.Errorf("certificate (-want +got):\n%s", diff)
	}
	if _, _, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/credentials/api-user/publicKey/"}); err != nil {
		t.Fatal(err)
	}
	if c, ok := s.Credential("MyProject", "api-user"); !ok || c.HasPublicKey {
		t.Errorf("credential = %+v, %v; want it without public key", c, ok)
	}
	if diff := cmp.Diff(map[string]int{"certificate/MyProject/my-certificate": 2, "credential/MyProject/api-user": 1}, s.Applied()); diff != "" {
		t.Errorf("Applied (-want +got):\n%s", diff)
	}

	reqs := s.Requests()
	if len(reqs) != 3 {
		t.Fatalf("log has %d requests, want 3", len(reqs))
	}
	r := reqs[0]
	if r.Method != "PUT" || r.Path != path || r.Query.Get("jwkUpdateAction") != "NULLIFY" || r.Status != 200 ||
		r.Resource != "certificate/MyProject/my-certificate" || r.Header.Get("Authorization") != "Bearer "+token ||
		r.End.Before(r.Start) {
		t.Errorf("first request = %+v", r)
	}
	if diff := cmp.Diff(fields, r.Form); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(files, r.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	s.ResetLog()
	if len(s.Requests()) != 0 || len(s.Applied()) != 0 || len(s.MaxInFlight()) != 0 {
		t.Error("ResetLog left entries behind")
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	del := call{method: "DELETE", path: "/apiops/projects/MyProject/credentials/api-user/publicKey/"}

	t.Run("a reply fault answers N times, with Retry-After and the given body", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.AddFault(apinizertest.Fault{Method: "DELETE", PathPrefix: "/apiops/projects/MyProject/credentials/", Times: 2,
			Reply: &apinizertest.Reply{Status: 503, RetryAfter: "3", Body: "<html>down</html>", ContentType: "text/html"}})
		var statuses []int
		for range 3 {
			req, _ := http.NewRequest("DELETE", s.URL+del.path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses = append(statuses, resp.StatusCode)
			if resp.StatusCode == 503 && (resp.Header.Get("Retry-After") != "3" || string(body) != "<html>down</html>") {
				t.Errorf("503 reply: Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
			}
		}
		if diff := cmp.Diff([]int{503, 503, 200}, statuses); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
	})

	t.Run("a fault that does not match leaves the request alone", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.AddFault(apinizertest.Fault{Method: "PUT", Reply: apinizertest.ErrorReply(500, "x", "y")})
		s.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/Other/", Reply: apinizertest.ErrorReply(500, "x", "y")})
		s.AddFault(apinizertest.Fault{Match: func(r *http.Request) bool { return r.URL.Query().Has("x") }, Reply: apinizertest.ErrorReply(500, "x", "y")})
		if status, _, err := send(context.Background(), t, s, del); status != 200 || err != nil {
			t.Errorf("status = %d, err = %v; want 200", status, err)
		}
	})

	t.Run("a fault forever applies until ClearFaults", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.AddFault(apinizertest.Fault{Reply: &apinizertest.Reply{Status: 502}})
		for range 3 {
			if status, _, _ := send(context.Background(), t, s, del); status != 502 {
				t.Fatalf("status = %d, want 502", status)
			}
		}
		s.ClearFaults()
		if status, _, _ := send(context.Background(), t, s, del); status != 200 {
			t.Errorf("after ClearFaults status = %d, want 200", status)
		}
	})

	t.Run("a delay fault holds the request and then answers normally", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.AddFault(apinizertest.Fault{Times: 1, Delay: 100 * time.Millisecond})
		if status, _, _ := send(context.Background(), t, s, del); status != 200 {
			t.Fatalf("status = %d, want 200", status)
		}
		if r := s.Requests()[0]; r.End.Sub(r.Start) < 100*time.Millisecond {
			t.Errorf("served in %s, want at least 100ms", r.End.Sub(r.Start))
		}
	})

	t.Run("SetLatency delays every answer", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.SetLatency(50 * time.Millisecond)
		send(context.Background(), t, s, del)
		if r := s.Requests()[0]; r.End.Sub(r.Start) < 50*time.Millisecond {
			t.Errorf("served in %s, want at least 50ms", r.End.Sub(r.Start))
		}
	})

	t.Run("a hang holds the request until the client gives up", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.AddFault(apinizertest.Fault{Hang: true})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, _, err := send(ctx, t, s, del)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the client's deadline", err)
		}
		if _, ok := s.Credential("MyProject", "api-user"); !ok {
			t.Error("a hung request changed the state")
		}
	})

	t.Run("a drop closes the connection without an answer", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.AddFault(apinizertest.Fault{Times: 1, Drop: true})
		if _, _, err := send(context.Background(), t, s, del); err == nil {
			t.Error("want a transport error")
		}
		if got := s.Requests()[0].Status; got != 0 {
			t.Errorf("logged status = %d, want 0", got)
		}
		if status, _, err := send(context.Background(), t, s, del); status != 200 || err != nil {
			t.Errorf("next request = %d, %v; want 200", status, err)
		}
	})

	t.Run("a failing environment still applies the change", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.FailEnvironment("MyProject", "production", true)
		status, body, _ := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"})
		want := `{"success": true, "deploymentResult": {"success": false, "message": "Undeployment completed with errors", "environmentResults": [
			{"environmentName": "production", "success": false, "message": "Undeployment failed: gateway did not respond"},
			{"environmentName": "staging", "success": true, "message": "Undeployed successfully"}]}}`
		if diff := cmp.Diff(decode(t, want), body); status != 200 || diff != "" {
			t.Errorf("status %d, body (-want +got):\n%s", status, diff)
		}
		if s.KeyExists("MyProject", "my-key") {
			t.Error("the key was not deleted")
		}
		s.FailEnvironment("MyProject", "production", false)
		s.AddKey("MyProject", "my-key")
		_, body, _ = send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"})
		if !strings.Contains(toJSON(body), `"message":"Undeployment completed successfully","success":true`) {
			t.Errorf("after switching it back on: %s", toJSON(body))
		}
	})

	t.Run("a fault that does nothing is a test bug", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		defer func() {
			if recover() == nil {
				t.Error("AddFault did not panic")
			}
		}()
		s.AddFault(apinizertest.Fault{Hang: true, Drop: true})
	})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestStopRefusesConnectionsAndRestartServesAgain(t *testing.T) {
	t.Parallel()
	s := setup(t)
	url := s.URL
	s.Stop()
	_, _, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("err = %v, want connection refused", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.URL != url {
		t.Errorf("URL changed from %s to %s", url, s.URL)
	}
	status, _, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"})
	if status != 200 || err != nil {
		t.Errorf("after restart: %d, %v; want 200", status, err)
	}
}

func TestStopReleasesHangingRequests(t *testing.T) {
	t.Parallel()
	s := setup(t)
	s.AddFault(apinizertest.Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		_, _, err := send(context.Background(), t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"})
		done <- err
	}()
	poll.Until(t, 5*time.Second, "the request to arrive", func() bool { return len(s.Requests()) == 1 })
	s.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Error("want a transport error for the cut request")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not release the hanging request")
	}
}

func TestConcurrencyTracking(t *testing.T) {
	t.Parallel()
	s := setup(t)
	// Hold every request so that they overlap for certain.
	s.AddFault(apinizertest.Fault{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, path := range []string{
		"/apiops/projects/MyProject/credentials/api-user/",
		"/apiops/projects/MyProject/credentials/api-user/publicKey/",
		"/apiops/projects/MyProject/keys/my-key/",
	} {
		wg.Go(func() { _, _, _ = send(ctx, t, s, call{method: "DELETE", path: path}) })
	}
	poll.Until(t, 5*time.Second, "three requests to arrive", func() bool { return len(s.Requests()) == 3 })
	cancel()
	wg.Wait()
	want := map[string]int{"credential/MyProject/api-user": 2, "key/MyProject/my-key": 1}
	if diff := cmp.Diff(want, s.MaxInFlight()); diff != "" {
		t.Errorf("MaxInFlight (-want +got):\n%s", diff)
	}
	if len(s.Applied()) != 0 {
		t.Errorf("Applied = %v, want nothing: every request hung", s.Applied())
	}
}

func TestStateSnapshot(t *testing.T) {
	t.Parallel()
	s := apinizertest.New(apinizertest.Config{})
	s.AddProject("B", "prod")
	s.AddKey("B", "k2")
	s.AddKey("B", "k1")
	s.AddCredential("A", "u", false)
	want := apinizertest.State{
		Projects: []apinizertest.ProjectState{
			{Name: "A", Certificates: []apinizertest.Certificate{}, Keys: []string{}, Credentials: []apinizertest.Credential{{Username: "u"}}},
			{Name: "B", Environments: []string{"prod"}, Certificates: []apinizertest.Certificate{}, Keys: []string{"k1", "k2"}, Credentials: []apinizertest.Credential{}},
		},
		Applied:     map[string]int{},
		MaxInFlight: map[string]int{},
	}
	if diff := cmp.Diff(want, s.State()); diff != "" {
		t.Errorf("State (-want +got):\n%s", diff)
	}
}

func BenchmarkSimulatorUpdate(b *testing.B) {
	s := apinizertest.NewServer(apinizertest.Config{Token: token})
	defer s.Close()
	defer http.DefaultClient.CloseIdleConnections()
	s.AddProject("MyProject", "production", "staging")
	s.AddCertificate("MyProject", "my-certificate", "")
	fields, files := certificateFields(testPEM(b))
	b.ReportAllocs()
	for b.Loop() {
		status, _, err := send(context.Background(), b, s, call{method: "PUT", path: "/apiops/projects/MyProject/certificates/my-certificate/", fields: fields, files: files})
		if status != 200 || err != nil {
			b.Fatal(status, err)
		}
	}
}

func TestHoldAnswerAppliesTheChangeEvenWhenTheClientGivesUp(t *testing.T) {
	t.Parallel()
	s := setup(t)
	s.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/keys/", HoldAnswer: time.Minute, Times: 1})
	ctx, cancel := context.WithCancel(context.Background())
	// Give up as soon as the change is applied, before the held answer (or
	// after 5s, and the assertions below fail).
	go func() {
		defer cancel()
		deadline := time.Now().Add(5 * time.Second)
		for s.KeyExists("MyProject", "my-key") && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}()
	_, _, err := send(ctx, t, s, call{method: "DELETE", path: "/apiops/projects/MyProject/keys/my-key/"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the client's cancellation", err)
	}
	if s.KeyExists("MyProject", "my-key") {
		t.Error("the key still exists: the held answer did not apply the change first")
	}
	poll.Until(t, 5*time.Second, "the held request to end unanswered", func() bool { return len(s.MaxInFlight()) > 0 && s.Requests()[0].Status == 0 })
}
