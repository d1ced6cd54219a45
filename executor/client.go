package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"filippo.io/age"
	"github.com/cenkalti/backoff/v4"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Client calls Apinizer's APIOps endpoints. It is safe for concurrent use;
// all calls share one http.Client and its connection pool.
type Client struct {
	base           *url.URL
	creds          credentials
	http           *http.Client
	attemptTimeout time.Duration
	retry          RetryPolicy
	readBackWrites bool
	envs           environmentCache
	identities     []age.Identity
}

// New returns a Client for cfg, after applying defaults and validating it.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	rt := cfg.Transport
	if rt == nil {
		rt = defaultTransport(cfg)
	}
	if cfg.WrapTransport != nil {
		rt = cfg.WrapTransport(rt)
	}
	c := &Client{
		base: base,
		http: &http.Client{
			Transport: rt,
			// A redirect is not part of any APIOps answer. Following it
			// would resend a PUT or DELETE somewhere the config never
			// named, so it is reported as the response it is.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		attemptTimeout: cfg.AttemptTimeout,
		retry:          cfg.Retry,
		readBackWrites: cfg.ReadBackWrites,
		identities:     cfg.Identities,
	}
	c.creds = cfg.credentials(base, c.http, cfg.AttemptTimeout)
	return c, nil
}

// connBufferSize is the default transport's read and write buffer, each,
// per connection. APIOps requests and answers are a few hundred bytes of
// headers and a small JSON body, and a larger body or header goes through
// in more reads or writes; the buffers, on the other hand, live as long as
// their connection, and a worker keeps one connection per concurrent call:
// at 1,024 calls, net/http's 4 KiB each came to 8 MiB of live heap, twice
// that at the GC's peak.
const connBufferSize = 2 << 10

// defaultTransport is http.DefaultTransport's configuration with timeouts on
// every phase before the response headers, so that a connection that hangs is
// cut even if the caller's context has no deadline, an idle pool sized for
// cfg.Concurrency callers and smaller buffers (connBufferSize).
func defaultTransport(cfg Config) *http.Transport {
	t := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	}
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = tlsHandshakeTimeout
	t.ResponseHeaderTimeout = cfg.AttemptTimeout
	t.MaxIdleConns = max(t.MaxIdleConns, cfg.Concurrency)
	t.MaxIdleConnsPerHost = cfg.Concurrency
	t.MaxConnsPerHost = 0
	t.ReadBufferSize, t.WriteBufferSize = connBufferSize, connBufferSize
	if cfg.TLS != nil {
		t.TLSClientConfig = cfg.TLS.Clone()
	}
	return t
}

// CloseIdleConnections closes the pooled connections that are not in use,
// for a clean shutdown.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// send makes job's one write call, retrying retryable failures within the
// RetryPolicy, and settles refusals that may echo a lost answer (settle).
// Execute describes what it returns.
func (c *Client) send(ctx context.Context, job jobs.Job, call Call) (Response, error) {
	req, err := c.buildRequest(job)
	if err != nil {
		return Response{}, err
	}
	// Clear key material lives only for the call.
	defer clear(req.body)
	extra, err := extraHeader(call.Header)
	if err != nil {
		return Response{}, err
	}
	start := time.Now()
	bo := c.retry.NewBackOff()
	// mayHaveApplied records that an earlier attempt of this job may have
	// reached Apinizer and made the change before its answer was lost.
	mayHaveApplied := call.PriorAttempts > 0
	renewed := false
	// answerLost records that the last attempt of this call got no answer
	// and may have been applied; checked, that an update was then read back
	// once. (A redelivered update is sent again: a harmless overwrite.)
	answerLost, checked := false, false
	var resp Response
	for {
		attempt := call.PriorAttempts + resp.Attempts + 1
		if call.BeforeAttempt != nil {
			if err := call.BeforeAttempt(ctx, attempt); err != nil {
				return resp, hookError(attempt, err)
			}
		}
		if j, ok := job.(*jobs.CertificateUpdate); ok && answerLost && !checked {
			checked = true
			// A failed read leaves the decision to the write itself.
			if done, err := c.alreadyUpdated(ctx, j); err == nil && done {
				return Response{Status: jobs.StatusSucceeded, Attempts: resp.Attempts, AlreadyApplied: true}, nil
			}
		}
		token, err := c.token(ctx)
		if err != nil {
			return resp, err
		}
		resp.Attempts++
		out, _, err := c.attempt(ctx, req, token, extra)
		if err == nil {
			out.Attempts = resp.Attempts
			scope(out.Deployment, job)
			return out, nil
		}
		if ctx.Err() != nil {
			return resp, fmt.Errorf("executor: %w: %w", ctx.Err(), ErrRetryable)
		}
		var apiErr *APIError
		isAPIErr := errors.As(err, &apiErr)
		if isAPIErr && apiErr.StatusCode == http.StatusUnauthorized && !renewed && c.creds.reject(token) {
			renewed = true
			continue
		}
		if isAPIErr {
			settled, ok, serr := c.settle(ctx, job, req, mayHaveApplied, apiErr)
			if serr != nil {
				return resp, serr
			}
			if ok {
				settled.Attempts = resp.Attempts
				return settled, nil
			}
		}
		if !errors.Is(err, ErrRetryable) {
			return resp, err
		}
		mayHaveApplied = mayHaveApplied || mayHaveReached(err)
		var tErr *TransportError
		answerLost = errors.As(err, &tErr)

		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return resp, err
		}
		if isAPIErr && apiErr.RetryAfter > 0 {
			if c.retry.MaxElapsedTime > 0 && time.Since(start)+apiErr.RetryAfter > c.retry.MaxElapsedTime {
				return resp, err
			}
			wait = max(wait, apiErr.RetryAfter)
		}
		if call.OnRetry != nil {
			call.OnRetry(attempt, err, wait)
		}
		if err := sleep(ctx, wait); err != nil {
			return resp, fmt.Errorf("executor: %w: %w", err, ErrRetryable)
		}
	}
}

// read sends an idempotent GET and returns the body of its successful
// answer, retrying retryable failures as bo says; its attempts are not a
// job's attempts.
func (c *Client) read(ctx context.Context, req *request, bo backoff.BackOff) ([]byte, error) {
	renewed := false
	for {
		token, err := c.token(ctx)
		if err != nil {
			return nil, err
		}
		_, body, err := c.attempt(ctx, req, token, nil)
		if err == nil {
			return body, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("executor: %w: %w", ctx.Err(), ErrRetryable)
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized && !renewed && c.creds.reject(token) {
			renewed = true
			continue
		}
		if !errors.Is(err, ErrRetryable) {
			return nil, err
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return nil, err
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("executor: %w: %w", err, ErrRetryable)
		}
	}
}

// attempt makes one HTTP attempt, bounded by the attempt timeout, and reads
// and closes the whole response so the connection can be reused. It returns
// the parsed answer and, for a success, the body.
func (c *Client) attempt(ctx context.Context, r *request, token string, header http.Header) (Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	req, err := r.newHTTPRequest(ctx, token, header)
	if err != nil {
		return Response{}, nil, err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return Response{}, nil, &TransportError{Err: err}
	}
	defer func() {
		// Drain what is left (bounded) so the connection goes back to
		// the pool; a larger remainder costs a reconnect instead.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBodyBytes))
		_ = res.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	if err != nil {
		return Response{}, nil, &TransportError{Err: fmt.Errorf("reading %d response: %w", res.StatusCode, err)}
	}
	// An answer that echoes the request (a proxy's error page, a 2xx
	// message quoting the Authorization header) must not put a secret
	// into a result, a ledger record, a dead letter, a log line or a
	// metric label: the body is redacted before it is read, so that no
	// field and no cut-off excerpt can hold one, and the strings read
	// from it once more after sanitize.
	red := newRedactor(append(c.creds.secrets(token), r.secrets...)...)
	body = red.body(body)
	out, err := parseResponse(res.StatusCode, res.Header, body)
	red.response(&out)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		red.apiError(apiErr)
	}
	if err != nil {
		return out, nil, err
	}
	return out, body, nil
}

// mayHaveReached reports whether a failed attempt may still have been
// processed by Apinizer: the answer was lost (transport error, timeout) or
// the server failed after possibly applying the change (5xx). A 429 was
// turned away before any work.
func mayHaveReached(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode >= 500 || apiErr.StatusCode == http.StatusRequestTimeout
	}
	var tErr *TransportError
	return errors.As(err, &tErr)
}

// hookError wraps an error from Call.BeforeAttempt. An error that carries no
// class of its own is retryable: the job was not attempted, so it has to be
// tried again.
func hookError(attempt int, err error) error {
	if errors.Is(err, ErrPermanent) || errors.Is(err, ErrRetryable) {
		return fmt.Errorf("executor: before attempt %d: %w", attempt, err)
	}
	return fmt.Errorf("executor: before attempt %d: %w: %w", attempt, err, ErrRetryable)
}

// sleep waits for d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
