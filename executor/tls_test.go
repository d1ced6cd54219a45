package executor_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestPlainHTTPIsOnlyForLoopbackUnlessAllowed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, url string
		allow     bool
		ok        bool
	}{
		{"https anywhere", "https://apinizer.example.com", false, true},
		{"http to 127.0.0.1", "http://127.0.0.1:8080", false, true},
		{"http to localhost", "http://localhost:8080", false, true},
		{"http to ::1", "http://[::1]:8080", false, true},
		{"http to another host", "http://apinizer.example.com", false, false},
		{"http to a private address", "http://10.0.0.7:8080", false, false},
		{"http to another host when allowed", "http://apinizer-sim:8080", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := executor.New(executor.Config{BaseURL: c.url, Token: staticToken, AllowInsecureHTTP: c.allow})
			if c.ok != (err == nil) {
				t.Errorf("New(%s) = %v, want ok %v", c.url, err, c.ok)
			}
			if err != nil && !errors.Is(err, executor.ErrInvalidConfig) {
				t.Errorf("error %v is not ErrInvalidConfig", err)
			}
		})
	}
	if _, err := executor.New(executor.Config{BaseURL: "https://a.example", Token: staticToken, TLS: &tls.Config{InsecureSkipVerify: true}}); !errors.Is(err, executor.ErrInvalidConfig) {
		t.Errorf("turning verification off: %v, want ErrInvalidConfig", err)
	}
}

func staticToken() (string, error) { return "t", nil }

func TestHTTPSWithAPrivateCAAndAClientCertificate(t *testing.T) {
	t.Parallel()
	ca, err := selfsigned.NewCA("apinizer test CA")
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := ca.Issue("apiops-worker")
	if err != nil {
		t.Fatal(err)
	}
	clientPair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	sim := apinizertest.New(apinizertest.Config{Token: "t"})
	sim.AddProject("P", "production")
	srv, err := ca.NewMutualTLSServer(sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	cases := []struct {
		name string
		tls  *tls.Config
		ok   bool
	}{
		{"the system roots do not know the private CA", nil, false},
		{"the CA alone is refused without a client certificate", &tls.Config{RootCAs: ca.Pool()}, false},
		{"the CA and a client certificate succeed", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientPair}}, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "k" + string(rune('0'+i))
			sim.AddKey("P", key)
			exec, err := executor.New(executor.Config{BaseURL: srv.URL, Token: staticToken, TLS: c.tls,
				Retry: executor.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxElapsedTime: time.Millisecond, Multiplier: 1, MaxAttempts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = exec.Execute(context.Background(), &jobs.KeyDelete{JobID: "j", ProjectName: "P", KeyName: key}, executor.Call{})
			if c.ok != (err == nil) {
				t.Fatalf("Execute = %v, want ok %v", err, c.ok)
			}
			var trErr *executor.TransportError
			if err != nil && !errors.As(err, &trErr) {
				t.Errorf("error %v is not a TransportError", err)
			}
			if c.ok && sim.KeyExists("P", key) {
				t.Error("the key was not deleted")
			}
		})
	}
}
