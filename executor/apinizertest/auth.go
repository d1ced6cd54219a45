package apinizertest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenPath is the token endpoint for client credentials.
const TokenPath = "/apiops/auth/token"

// DefaultTokenTTL is the lifetime of an issued token when Config.TokenTTL is
// zero.
const DefaultTokenTTL = time.Hour

// auth decides which bearer tokens are accepted: the configured static
// token, and the tokens the token endpoint issued until they expire.
type auth struct {
	clientID, clientSecret string
	ttl                    time.Duration

	mu      sync.Mutex
	static  string
	retired map[string]bool      // static tokens replaced by SetToken
	issued  map[string]time.Time // issued token -> expiry
	fetches int
}

func newAuth(cfg Config) auth {
	ttl := cfg.TokenTTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return auth{
		clientID: cfg.ClientID, clientSecret: cfg.ClientSecret, ttl: ttl,
		static: cfg.Token, retired: map[string]bool{}, issued: map[string]time.Time{},
	}
}

// clients reports whether the token endpoint is enabled.
func (a *auth) clients() bool { return a.clientID != "" && a.clientSecret != "" }

// check returns why the Authorization header is refused at now (authMissing,
// authInvalid, authExpired), or "" if it is accepted.
func (a *auth) check(header string, now time.Time) string {
	token, ok := strings.CutPrefix(header, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return authMissing
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.static != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.static)) == 1 {
		return ""
	}
	if expiry, ok := a.issued[token]; ok {
		if now.Before(expiry) {
			return ""
		}
		return authExpired
	}
	if a.retired[token] {
		return authExpired
	}
	if a.static == "" && !a.clients() {
		return "" // any non-empty token, as configured
	}
	return authInvalid
}

// SetToken replaces the static token; the old one is then refused as
// expired, as after a rotation in Apinizer's console.
func (s *Simulator) SetToken(token string) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	if s.auth.static != "" {
		s.auth.retired[s.auth.static] = true
	}
	s.auth.static = token
}

// ExpireTokens makes every token issued so far expire now.
func (s *Simulator) ExpireTokens() {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	now := time.Now()
	for t := range s.auth.issued {
		s.auth.issued[t] = now
	}
}

// TokenFetches is the number of tokens the token endpoint has issued.
func (s *Simulator) TokenFetches() int {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.auth.fetches
}

// issueToken answers POST /apiops/auth/token: form-encoded
// grant_type=client_credentials, client_id and client_secret, as
// getting-started_authentication.mdx documents.
func (s *Simulator) issueToken(w http.ResponseWriter, method string, f form) int {
	a := &s.auth
	s.mu.Lock()
	style := s.style
	s.mu.Unlock()
	refuse := func(status int, code, description string) int {
		if style == StyleCurrent {
			return writeJSON(w, status, podsError{Status: "FAILURE", ResultMessage: description})
		}
		return writeJSON(w, status, classicError{Error: code, ErrorDescription: description})
	}
	switch {
	case method != http.MethodPost:
		return writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"status": 405, "error": "Method Not Allowed"})
	case !a.clients():
		return refuse(http.StatusUnauthorized, "unauthorized_client", "Bad credentials")
	case f.fields["grant_type"] != "client_credentials":
		return refuse(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
	case subtle.ConstantTimeCompare([]byte(f.fields["client_id"]), []byte(a.clientID)) != 1,
		subtle.ConstantTimeCompare([]byte(f.fields["client_secret"]), []byte(a.clientSecret)) != 1:
		return refuse(http.StatusUnauthorized, "unauthorized_client", "Bad credentials")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "sim-" + hex.EncodeToString(b[:])
	a.mu.Lock()
	a.issued[token] = time.Now().Add(a.ttl)
	a.fetches++
	a.mu.Unlock()
	return writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token, "token_type": "Bearer", "expires_in": int(a.ttl.Round(time.Second) / time.Second),
	})
}
