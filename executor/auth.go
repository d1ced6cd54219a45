package executor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TokenPath is Apinizer's token endpoint for client credentials, under the
// base URL.
const TokenPath = "/apiops/auth/token"

// ClientCredentials gets the bearer token from Apinizer's token endpoint
// (POST /apiops/auth/token, form-encoded grant_type=client_credentials) and
// renews it before it expires.
type ClientCredentials struct {
	// ClientID is the Apinizer username. Required.
	ClientID string
	// ClientSecret returns the password. Required. It is called for every
	// token fetch, so a rotated secret file is picked up without a
	// restart; its value is only ever sent in the token request's body.
	ClientSecret func() (string, error)
	// TokenURL overrides the token endpoint. Default: BaseURL + TokenPath.
	TokenURL string
	// RenewBefore is how long before its expiry a token is replaced.
	// Default: a quarter of the token's lifetime, at most one minute, so
	// that short-lived tokens are renewed too.
	RenewBefore time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// credentials provides the bearer token for every attempt.
type credentials interface {
	// token returns the token to send.
	token(ctx context.Context) (string, error)
	// reject drops a token Apinizer refused with 401 and reports whether
	// asking again may give a different one worth one more attempt.
	reject(token string) bool
	// secrets lists what must never leave the executor in clear after an
	// attempt made with token: the token, and the client secret.
	secrets(token string) []string
}

// personalToken is a personal API access token, read before every attempt
// (inline, or re-read from a file by the caller's function).
type personalToken func() (string, error)

func (p personalToken) token(context.Context) (string, error) { return p() }

// reject cannot help: the same function returns the same token until the
// operator replaces it, which the next attempt picks up by itself.
func (p personalToken) reject(string) bool { return false }

func (p personalToken) secrets(token string) []string { return []string{token} }

// tokenCache holds the client-credentials token. Fetching goes through
// x/oauth2's clientcredentials flow; the cache is ours because oauth2's
// ReuseTokenSource renews a fixed 10s before expiry (every call, for tokens
// shorter than that) and cannot drop a token Apinizer revoked early.
type tokenCache struct {
	cfg     ClientCredentials
	http    *http.Client
	timeout time.Duration

	mu      sync.Mutex // held during a fetch, so concurrent callers share one
	tok     *oauth2.Token
	renewAt time.Time
	// secret is the client secret last sent, kept to be taken out of
	// answers that echo it.
	secret string
}

// token returns the cached token, fetching a new one when there is none or
// its renewal time has come.
func (t *tokenCache) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.cfg.Now().Before(t.renewAt) {
		return t.tok.AccessToken, nil
	}
	tok, err := t.fetch(ctx)
	if err != nil {
		return "", err
	}
	t.tok, t.renewAt = tok, t.renewal(tok)
	return tok.AccessToken, nil
}

func (t *tokenCache) reject(token string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.tok.AccessToken == token {
		t.tok = nil
	}
	return true
}

func (t *tokenCache) secrets(token string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return []string{token, t.secret}
}

// renewal is when tok is replaced: RenewBefore (or a quarter of its
// lifetime, at most a minute) before it expires; never for a token without
// expiry.
func (t *tokenCache) renewal(tok *oauth2.Token) time.Time {
	if tok.Expiry.IsZero() {
		return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	lifetime := tok.Expiry.Sub(t.cfg.Now())
	margin := t.cfg.RenewBefore
	if margin <= 0 {
		margin = min(lifetime/4, time.Minute)
	}
	return tok.Expiry.Add(-margin)
}

// fetch runs the client-credentials flow once. A refusal (400 or 401) is a
// *TokenError; anything else (no answer, 5xx, an unreadable answer) is a
// *TransportError, as Apinizer may answer later.
func (t *tokenCache) fetch(ctx context.Context) (*oauth2.Token, error) {
	secret, err := t.cfg.ClientSecret()
	if err != nil {
		return nil, &TransportError{Err: fmt.Errorf("reading the client secret: %w", err)}
	}
	t.secret = secret
	red := newRedactor(secret)
	cc := clientcredentials.Config{
		ClientID:     t.cfg.ClientID,
		ClientSecret: secret,
		TokenURL:     t.cfg.TokenURL,
		// Apinizer reads client_id and client_secret from the form body.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, t.http))
	var re *oauth2.RetrieveError
	switch {
	case err == nil:
		return tok, nil
	case errors.As(err, &re) && re.Response != nil &&
		(re.Response.StatusCode == http.StatusUnauthorized || re.Response.StatusCode == http.StatusBadRequest):
		msg := re.ErrorDescription
		if b, ok := decodeBody(red.body(re.Body)); ok && msg == "" {
			msg = b.message()
		}
		return nil, &TokenError{StatusCode: re.Response.StatusCode, Message: red.text(sanitize(red.text(msg), maxExcerptBytes))}
	case errors.As(err, &re) && re.Response != nil:
		return nil, &TransportError{Err: fmt.Errorf("token endpoint answered %d", re.Response.StatusCode)}
	}
	// x/oauth2's errors name the URL and at most a piece of the server's
	// answer, which could echo the secret.
	if text := err.Error(); red.text(text) != text {
		err = errors.New(red.text(text))
	}
	return nil, &TransportError{Err: err}
}

// token returns the token for the next attempt, checked before the attempt
// is counted: one the Authorization header cannot carry is errBadToken.
func (c *Client) token(ctx context.Context) (string, error) {
	token, err := c.creds.token(ctx)
	if err != nil {
		return "", tokenError(err)
	}
	if !validHeaderValue(token) {
		return "", errBadToken
	}
	return token, nil
}

// tokenError classifies a failure to get a token: the credentials' fault
// (ErrUnauthorized) or a failure that may pass (ErrRetryable), never the
// job's.
func tokenError(err error) error {
	if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrRetryable) {
		return fmt.Errorf("executor: getting a token: %w", err)
	}
	// Not the job's fault, nor Apinizer's: the worker's credentials are
	// unusable until the token can be read again.
	return &CredentialsError{Err: err}
}

// credentials builds the token provider of a validated config.
func (c Config) credentials(base *url.URL, hc *http.Client, timeout time.Duration) credentials {
	if c.ClientCredentials == nil {
		return personalToken(c.Token)
	}
	cc := *c.ClientCredentials
	if cc.TokenURL == "" {
		u := *base
		u.Path, u.RawPath = base.Path+TokenPath, base.RawPath+TokenPath
		cc.TokenURL = u.String()
	}
	if cc.Now == nil {
		cc.Now = time.Now
	}
	return &tokenCache{cfg: cc, http: hc, timeout: timeout}
}
