package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
)

// The worker's side of Apinizer: how it authenticates (a personal token,
// inline or from a file, or client credentials) and its TLS settings.

// apinizerTLS is the TLS configuration for Apinizer: the system roots or the
// CA file, and an optional client certificate. Verification stays on.
func (c config) apinizerTLS() (*tls.Config, error) {
	if c.apinizerCAFile == "" && c.apinizerClientCert == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.apinizerCAFile != "" {
		b, err := os.ReadFile(c.apinizerCAFile)
		if err != nil {
			return nil, fmt.Errorf("APINIZER_CA_FILE: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("APINIZER_CA_FILE: %s holds no PEM certificate", c.apinizerCAFile)
		}
	}
	if c.apinizerClientCert != "" {
		pair, err := tls.LoadX509KeyPair(c.apinizerClientCert, c.apinizerClientKey)
		if err != nil {
			return nil, fmt.Errorf("APINIZER_CLIENT_CERT: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// validateApinizerAuth checks that exactly one of the three ways to
// authenticate to Apinizer is set: a personal token inline, a personal token
// file, or client credentials.
func (c config) validateApinizerAuth() []error {
	clientCreds := c.apinizerClientID != "" || c.apinizerClientSecret != "" || c.apinizerClientSecretFile != ""
	ways := 0
	for _, set := range []bool{c.apinizerToken != "", c.apinizerTokenFile != "", clientCreds} {
		if set {
			ways++
		}
	}
	const all = "APINIZER_TOKEN, APINIZER_TOKEN_FILE, or APINIZER_CLIENT_ID with APINIZER_CLIENT_SECRET or APINIZER_CLIENT_SECRET_FILE"
	switch {
	case ways == 0:
		return []error{fmt.Errorf("APINIZER_TOKEN: required: set one of %s", all)}
	case ways > 1:
		return []error{fmt.Errorf("APINIZER_TOKEN, APINIZER_TOKEN_FILE, APINIZER_CLIENT_ID: set only one way to authenticate: %s", all)}
	case !clientCreds:
		return nil
	}
	var errs []error
	if c.apinizerClientID == "" {
		errs = append(errs, errors.New("APINIZER_CLIENT_ID (--apinizer-client-id): required with APINIZER_CLIENT_SECRET or APINIZER_CLIENT_SECRET_FILE"))
	}
	if (c.apinizerClientSecret == "") == (c.apinizerClientSecretFile == "") {
		errs = append(errs, errors.New("APINIZER_CLIENT_SECRET, APINIZER_CLIENT_SECRET_FILE: set exactly one with APINIZER_CLIENT_ID"))
	}
	return errs
}

// apinizerAuth sets the executor's way to authenticate: a personal token
// (inline or from a file), or client credentials whose tokens the executor
// fetches and renews.
func (c config) apinizerAuth(ec *executor.Config) {
	if c.apinizerClientID == "" {
		ec.Token = c.token()
		return
	}
	secret := func() (string, error) { return c.apinizerClientSecret, nil }
	if c.apinizerClientSecretFile != "" {
		secret = (&secretFile{path: c.apinizerClientSecretFile, env: "APINIZER_CLIENT_SECRET_FILE"}).get
	}
	ec.ClientCredentials = &executor.ClientCredentials{ClientID: c.apinizerClientID, ClientSecret: secret}
}

// token returns the Apinizer token source: the inline token, or the token
// file, re-read whenever it changes so that a rotated token is used without
// a restart.
func (c config) token() func() (string, error) {
	if c.apinizerTokenFile == "" {
		t := c.apinizerToken
		return func() (string, error) { return t, nil }
	}
	return (&secretFile{path: c.apinizerTokenFile, env: "APINIZER_TOKEN_FILE"}).get
}

// secretFile caches a secret file's content (a token, a client secret),
// keyed by its modification time and size, so that a call costs a stat, not
// a read, and a rotated file is picked up without a restart.
type secretFile struct {
	path string
	// env names the variable that set path, for errors.
	env string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	value   string
}

func (f *secretFile) get() (string, error) {
	info, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.env, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.value != "" && info.ModTime().Equal(f.modTime) && info.Size() == f.size {
		return f.value, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.env, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s is empty", f.env)
	}
	f.value, f.modTime, f.size = t, info.ModTime(), info.Size()
	return t, nil
}
