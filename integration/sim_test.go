package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// simRequest is the part of a /_sim/requests entry these tests check.
type simRequest struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  url.Values  `json:"query"`
	Header http.Header `json:"header"`
	Status int         `json:"status"`
}

func TestSimulatorContainerAnswers(t *testing.T) {
	t.Parallel()
	sim := startSim(t, startNetwork(t))
	base := sim.HostURL(t)

	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	status, body := call(t, ctx, http.MethodGet, base+"/healthz")
	if status != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q, want 200 \"ok\\n\"", status, body)
	}

	// The built-in seed holds key my-key in project MyProject.
	const keyPath = "/apiops/projects/MyProject/keys/my-key/"
	status, body = call(t, ctx, http.MethodDelete, base+keyPath+"?jwkDeleteAction=DELETE")
	if status != http.StatusOK {
		t.Fatalf("DELETE %s = %d %s, want 200", keyPath, status, body)
	}
	var deleted struct {
		Success bool `json:"success"`
	}
	if err := json.Unmarshal([]byte(body), &deleted); err != nil || !deleted.Success {
		t.Errorf("DELETE %s body = %s, want {\"success\": true} (decode error: %v)", keyPath, body, err)
	}

	// The request log records the call as it arrived, the token redacted. /healthz and
	// /_sim/* are the container's own endpoints and are not logged.
	status, body = call(t, ctx, http.MethodGet, base+"/_sim/requests")
	if status != http.StatusOK {
		t.Fatalf("GET /_sim/requests = %d %s, want 200", status, body)
	}
	var logged []simRequest
	if err := json.Unmarshal([]byte(body), &logged); err != nil {
		t.Fatalf("decode /_sim/requests: %v\n%s", err, body)
	}
	for i := range logged {
		// Only the header that matters here: the rest is whatever Go's client sent.
		logged[i].Header = http.Header{"Authorization": logged[i].Header.Values("Authorization")}
	}
	want := []simRequest{{
		Method: http.MethodDelete,
		Path:   keyPath,
		Query:  url.Values{"jwkDeleteAction": {"DELETE"}},
		Header: http.Header{"Authorization": {"REDACTED"}},
		Status: http.StatusOK,
	}}
	if diff := cmp.Diff(want, logged); diff != "" {
		t.Errorf("/_sim/requests mismatch (-want +got):\n%s", diff)
	}
}

// call sends an empty-bodied request with a bearer token, as the worker does, and returns
// the status and body.
func call(t testing.TB, ctx context.Context, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	req.Header.Set("Authorization", "Bearer integration-test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(body)
}
