package executor

import (
	"context"
	"io"
	"net/http"
	"strconv"
)

// Probe asks whether Apinizer answers at all, for a circuit breaker deciding
// when an outage is over. It sends GET {base}/apiops/ with the token and
// changes nothing: any answer below 500 (even 404, which Apinizer gives for
// that path) shows the server is back; a transport error or a 5xx (a proxy
// in front of a dead server) is returned as an error matching ErrRetryable.
func (c *Client) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	token, err := c.token()
	if err != nil {
		return &TransportError{Err: err}
	}
	u := *c.base
	u.Path, u.RawPath = u.Path+"/apiops/", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return &TransportError{Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.http.Do(req)
	if err != nil {
		return &TransportError{Err: err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBodyBytes))
	_ = res.Body.Close()
	if res.StatusCode >= 500 {
		return &APIError{StatusCode: res.StatusCode, Code: "http_" + strconv.Itoa(res.StatusCode), Message: "probe answered " + res.Status}
	}
	return nil
}
