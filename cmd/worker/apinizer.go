package main

import (
	"crypto/tls"
	"crypto/x509"
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
			return nil, fmt.Errorf("%s: %w", c.named("APINIZER_CA_FILE"), err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", c.named("APINIZER_CA_FILE"), c.apinizerCAFile)
		}
	}
	if c.apinizerClientCert != "" {
		pair, err := tls.LoadX509KeyPair(c.apinizerClientCert, c.apinizerClientKey)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", c.named("APINIZER_CLIENT_CERT"), c.named("APINIZER_CLIENT_KEY"), err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// validateApinizerAuth checks that exactly one of the three ways to
// authenticate to Apinizer is set: a personal token inline, a personal token
// file, or client credentials; and that the file it names, if any, can be
// read and is not empty, so that a wrong path stops the start, not every
// job.
func (c config) validateApinizerAuth() []error {
	clientCreds := c.apinizerClientID != "" || c.apinizerClientSecret != "" || c.apinizerClientSecretFile != ""
	ways := 0
	for _, set := range []bool{c.apinizerToken != "", c.apinizerTokenFile != "", clientCreds} {
		if set {
			ways++
		}
	}
	token, tokenFile, id := c.named("APINIZER_TOKEN"), c.named("APINIZER_TOKEN_FILE"), c.named("APINIZER_CLIENT_ID")
	secret, secretFile := c.named("APINIZER_CLIENT_SECRET"), c.named("APINIZER_CLIENT_SECRET_FILE")
	all := fmt.Sprintf("%s, %s, or %s with %s or %s", token, tokenFile, id, secret, secretFile)
	switch {
	case ways == 0:
		return []error{fmt.Errorf("%s: required: set one of %s", token, all)}
	case ways > 1:
		return []error{fmt.Errorf("%s, %s, %s: set only one way to authenticate: %s", token, tokenFile, id, all)}
	case !clientCreds:
		return c.readable(c.apinizerTokenFile, "APINIZER_TOKEN_FILE")
	}
	var errs []error
	if c.apinizerClientID == "" {
		errs = append(errs, fmt.Errorf("%s: required with %s or %s", id, secret, secretFile))
	}
	if (c.apinizerClientSecret == "") == (c.apinizerClientSecretFile == "") {
		errs = append(errs, fmt.Errorf("%s, %s: set exactly one with %s", secret, secretFile, id))
	}
	if errs != nil {
		return errs
	}
	return c.readable(c.apinizerClientSecretFile, "APINIZER_CLIENT_SECRET_FILE")
}

// readable checks that the secret file path, set by env, can be read now and
// is not empty; no path is no error.
func (c config) readable(path, env string) []error {
	if path == "" {
		return nil
	}
	if _, err := (&secretFile{path: path, env: c.named(env)}).get(); err != nil {
		return []error{err}
	}
	return nil
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
		secret = (&secretFile{path: c.apinizerClientSecretFile, env: c.named("APINIZER_CLIENT_SECRET_FILE")}).get
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
	return (&secretFile{path: c.apinizerTokenFile, env: c.named("APINIZER_TOKEN_FILE")}).get
}

// secretFile caches a secret file's content (a token, a client secret),
// keyed by its modification time and size, so that a call costs a stat, not
// a read, and a rotated file is picked up without a restart.
type secretFile struct {
	path string
	// env names the variable (and flag) that set path, for errors.
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
