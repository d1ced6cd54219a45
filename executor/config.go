package executor

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"filippo.io/age"
	"github.com/cenkalti/backoff/v4"
)

// ErrInvalidConfig is returned by New when the Config cannot work.
var ErrInvalidConfig = errors.New("executor: invalid config")

// Config configures a Client. The zero value of every optional field selects
// the default stated in its comment.
type Config struct {
	// BaseURL is Apinizer's base URL, for example "https://demo.apinizer.com".
	// Required: an absolute http or https URL without query, fragment or user
	// info. A path prefix is kept; a trailing slash is tolerated.
	BaseURL string
	// Token returns the personal API access token. It is called before
	// every HTTP attempt, so a rotated token file is picked up without a
	// restart. Its value is only ever put in the Authorization header.
	// Exactly one of Token and ClientCredentials is required.
	Token func() (string, error)
	// ClientCredentials, instead of Token, gets the token from Apinizer's
	// token endpoint and renews it before it expires; on a 401 the client
	// fetches a fresh token once and repeats the attempt.
	ClientCredentials *ClientCredentials
	// Concurrency is the number of Execute calls the caller runs at once.
	// The default transport keeps that many idle connections per host, so
	// that a busy worker does not reconnect for every call. Default 16.
	Concurrency int
	// Transport, if set, is used as is; callers wrap it for TLS settings or
	// metrics. Default: a clone of http.DefaultTransport with dial, TLS
	// handshake and response header timeouts, MaxIdleConnsPerHost =
	// Concurrency, no MaxConnsPerHost limit and 2 KiB read and write
	// buffers per connection.
	Transport http.RoundTripper
	// AllowInsecureHTTP permits a plain http:// BaseURL on a host that is not
	// loopback. The token would cross the network in clear text, so it is off
	// by default and only for isolated test networks.
	AllowInsecureHTTP bool
	// TLS configures HTTPS to Apinizer in the default transport: a private
	// CA (RootCAs) and a client certificate. Nil uses the system roots.
	// Verification is never turned off by this package.
	TLS *tls.Config
	// WrapTransport, if set, wraps the transport (given or default), so that
	// a caller can measure requests without giving up the default transport's
	// settings.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// AttemptTimeout bounds one HTTP attempt, from sending the request to
	// reading the whole response. Default 30s.
	AttemptTimeout time.Duration
	// Retry is the backoff between attempts of one Execute. The zero value
	// selects DefaultRetryPolicy(); a non-zero policy is used as given and
	// must be complete.
	Retry RetryPolicy
	// ReadBackWrites reads a certificate back after a certificate.create
	// or certificate.update succeeded, as certificate.apply always does:
	// the result then carries what is live (Response.Live), and an
	// environment that does not serve the upload fails. Off by default, as
	// it costs one read per write.
	ReadBackWrites bool
	// Identities are the worker's age identities, which open the
	// encryptedContent of SECRET_KEY and PRIVATE_KEY jobs just before the
	// call (LoadIdentities reads them from a file). With none, such jobs
	// fail with CodeUndecryptable. Several allow a recipient rotation.
	Identities []age.Identity
}

// Defaults for the zero values of Config.
const (
	DefaultConcurrency    = 16
	DefaultAttemptTimeout = 30 * time.Second
)

// Timeouts of the default transport. They cut connections that hang before
// any response arrives; AttemptTimeout still bounds the whole attempt.
const (
	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
)

// WithDefaults returns a copy of c with every unset optional field set to its
// default. It does not validate.
func (c Config) WithDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.Retry == (RetryPolicy{}) {
		c.Retry = DefaultRetryPolicy()
	}
	return c
}

// CheckBaseURL reports, as ErrInvalidConfig, what makes raw unusable as
// Apinizer's base URL: not an absolute http(s) URL, user info, a query or
// fragment, or plain http to a host that is not loopback (the token would
// cross the network in clear text) unless allowInsecureHTTP. New applies
// it; configuration front ends call it to name their own setting.
func CheckBaseURL(raw string, allowInsecureHTTP bool) error {
	base, err := parseBaseURL(raw)
	if err != nil {
		return err
	}
	if base.Scheme == "http" && !allowInsecureHTTP && !isLoopback(base.Hostname()) {
		return fmt.Errorf("%w: %s is plain http to a host that is not loopback, which would send the token in clear text: use https, or allow insecure http explicitly", ErrInvalidConfig, base.Redacted())
	}
	return nil
}

// isLoopback reports whether host names this machine: localhost or an
// address in 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validate reports the first problem of a defaulted Config.
func (c Config) validate() error {
	if c.BaseURL == "" {
		return fmt.Errorf("%w: BaseURL is required", ErrInvalidConfig)
	}
	if err := CheckBaseURL(c.BaseURL, c.AllowInsecureHTTP); err != nil {
		return err
	}
	if c.TLS != nil && c.TLS.InsecureSkipVerify {
		return fmt.Errorf("%w: TLS certificate verification cannot be turned off", ErrInvalidConfig)
	}
	switch cc := c.ClientCredentials; {
	case c.Token == nil && cc == nil:
		return fmt.Errorf("%w: Token or ClientCredentials is required", ErrInvalidConfig)
	case c.Token != nil && cc != nil:
		return fmt.Errorf("%w: set only one of Token and ClientCredentials", ErrInvalidConfig)
	case cc != nil && (cc.ClientID == "" || cc.ClientSecret == nil):
		return fmt.Errorf("%w: ClientCredentials needs ClientID and ClientSecret", ErrInvalidConfig)
	case cc != nil && cc.RenewBefore < 0:
		return fmt.Errorf("%w: ClientCredentials.RenewBefore must not be negative", ErrInvalidConfig)
	case cc != nil && cc.TokenURL != "":
		if _, err := parseBaseURL(cc.TokenURL); err != nil {
			return fmt.Errorf("%w: ClientCredentials.TokenURL must be an absolute http or https URL", ErrInvalidConfig)
		}
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("%w: Concurrency must be positive, got %d", ErrInvalidConfig, c.Concurrency)
	}
	if c.AttemptTimeout < 0 {
		return fmt.Errorf("%w: AttemptTimeout must be positive, got %s", ErrInvalidConfig, c.AttemptTimeout)
	}
	return c.Retry.validate()
}

// parseBaseURL checks BaseURL and returns it with the trailing slash removed
// from its path, ready for the fixed path templates to be appended.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL: %w", ErrInvalidConfig, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: BaseURL must be an absolute http or https URL", ErrInvalidConfig)
	case u.Host == "":
		return nil, fmt.Errorf("%w: BaseURL has no host", ErrInvalidConfig)
	case u.User != nil:
		return nil, fmt.Errorf("%w: BaseURL must not carry user info; the token is sent as a bearer token", ErrInvalidConfig)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("%w: BaseURL must not have a query", ErrInvalidConfig)
	case u.Fragment != "" || u.RawFragment != "":
		return nil, fmt.Errorf("%w: BaseURL must not have a fragment", ErrInvalidConfig)
	}
	escaped := u.EscapedPath()
	for len(escaped) > 0 && escaped[len(escaped)-1] == '/' {
		escaped = escaped[:len(escaped)-1]
	}
	path, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL path: %w", ErrInvalidConfig, err)
	}
	u.Path, u.RawPath = path, escaped
	return u, nil
}

// RetryPolicy is an exponential backoff with jitter, bounded in time and
// optionally in attempts. It bounds the in-process retries of one Execute;
// redeliveries of the job are the caller's business.
type RetryPolicy struct {
	// InitialInterval is the wait after the first failed attempt, before
	// jitter.
	InitialInterval time.Duration
	// MaxInterval caps the wait before jitter.
	MaxInterval time.Duration
	// MaxElapsedTime bounds the whole Execute, waits included; once the next
	// wait would cross it, the last error is returned. Zero means no bound.
	MaxElapsedTime time.Duration
	// Multiplier grows the wait after every failed attempt; at least 1.
	Multiplier float64
	// RandomizationFactor spreads each wait over [1-f, 1+f] times the
	// interval so that workers do not retry in lockstep; between 0 and 1.
	RandomizationFactor float64
	// MaxAttempts bounds the HTTP attempts of one Execute; 0 means unlimited
	// within MaxElapsedTime.
	MaxAttempts int
}

// DefaultRetryPolicy returns the policy used when Config.Retry is zero:
// 500ms doubling up to 10s, ±50% jitter, for at most 60s per delivery.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		InitialInterval:     500 * time.Millisecond,
		MaxInterval:         10 * time.Second,
		MaxElapsedTime:      60 * time.Second,
		Multiplier:          2,
		RandomizationFactor: 0.5,
	}
}

// NewBackOff returns a fresh, started backoff for one Execute. A BackOff is
// not safe for concurrent use, so every call needs its own.
func (p RetryPolicy) NewBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.InitialInterval),
		backoff.WithMaxInterval(p.MaxInterval),
		backoff.WithMaxElapsedTime(p.MaxElapsedTime),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithRandomizationFactor(p.RandomizationFactor),
	)
	if p.MaxAttempts > 0 {
		// WithMaxRetries counts retries, MaxAttempts counts the first
		// attempt too.
		return backoff.WithMaxRetries(b, uint64(p.MaxAttempts-1))
	}
	return b
}

func (p RetryPolicy) validate() error {
	switch {
	case p.InitialInterval <= 0:
		return fmt.Errorf("%w: Retry.InitialInterval must be positive", ErrInvalidConfig)
	case p.MaxInterval < p.InitialInterval:
		return fmt.Errorf("%w: Retry.MaxInterval must be at least InitialInterval", ErrInvalidConfig)
	case p.MaxElapsedTime < 0:
		return fmt.Errorf("%w: Retry.MaxElapsedTime must not be negative", ErrInvalidConfig)
	case p.Multiplier < 1:
		return fmt.Errorf("%w: Retry.Multiplier must be at least 1", ErrInvalidConfig)
	case p.RandomizationFactor < 0 || p.RandomizationFactor > 1:
		return fmt.Errorf("%w: Retry.RandomizationFactor must be between 0 and 1", ErrInvalidConfig)
	case p.MaxAttempts < 0:
		return fmt.Errorf("%w: Retry.MaxAttempts must not be negative", ErrInvalidConfig)
	}
	return nil
}
