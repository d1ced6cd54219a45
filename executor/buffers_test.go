package executor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// TestCallsLargerThanTheConnectionBuffers checks that the default
// transport's small buffers (connBufferSize) cut nothing: a request body, an
// answer header and an answer body each several buffers long go through,
// and the connection is reused for the next call.
func TestCallsLargerThanTheConnectionBuffers(t *testing.T) {
	t.Parallel()
	sim := apinizertest.New(apinizertest.Config{Token: testToken})
	pemText := testPEM(t)
	sim.AddProject("MyProject", "production", "staging")
	sim.AddCertificate("MyProject", "my-certificate", pemText)
	large := 3 * connBufferSize
	sim.AddFault(apinizertest.Fault{Message: strings.Repeat("m", large)})
	var requestBytes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requestBytes.Store(r.ContentLength)
		w.Header().Set("X-Padding", strings.Repeat("p", large))
		sim.ServeHTTP(w, r)
	}))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, Token: func() (string, error) { return testToken, nil },
		AttemptTimeout: 5 * time.Second, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)

	job := certificateUpdate(pemText)
	job.CertificateDescription = strings.Repeat("d", large)
	for i := range 2 {
		resp, err := c.Execute(context.Background(), job, Call{})
		if err != nil || resp.Status != jobs.StatusSucceeded || resp.Attempts != 1 {
			t.Fatalf("call %d: Execute = %+v, %v; want success at the first attempt", i+1, resp, err)
		}
		if resp.Deployment == nil || !strings.Contains(resp.Deployment.Message, strings.Repeat("m", 100)) {
			t.Errorf("call %d: deployment %+v, want the long message", i+1, resp.Deployment)
		}
	}
	if n := requestBytes.Load(); n <= int64(large) {
		t.Errorf("request body %d bytes, want more than %d", n, large)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for two calls, want 1", n)
	}
}
