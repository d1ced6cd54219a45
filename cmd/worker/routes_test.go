package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRoutesServeNoProfilesAndSayWhyNotReady(t *testing.T) {
	t.Parallel()
	notReady := errors.New("circuit breaker open: Apinizer rejects the worker's credentials (expired)")
	srv := httptest.NewServer(routes(prometheus.NewRegistry(), func() error { return notReady }))
	defer srv.Close()
	tests := []struct {
		path    string
		status  int
		bodyHas string
	}{
		{"/debug/pprof/", http.StatusNotFound, ""},
		{"/debug/pprof/cmdline", http.StatusNotFound, ""},
		{"/readyz", http.StatusServiceUnavailable, "rejects the worker's credentials (expired)"},
		{"/healthz", http.StatusOK, "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.path+" answers "+http.StatusText(tc.status), func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.bodyHas) {
				t.Errorf("GET %s = %d %q, want %d with %q", tc.path, resp.StatusCode, body, tc.status, tc.bodyHas)
			}
		})
	}
}
