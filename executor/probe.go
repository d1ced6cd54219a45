package executor

import (
	"context"
	"errors"
	"net/http"

	"github.com/cenkalti/backoff/v4"
)

// Probe asks whether Apinizer answers and accepts the token, for a circuit
// breaker deciding when an outage is over and for a worker paused by a
// rejected token. It sends GET {base}/apiops/projects/, the documented
// read-only call, and changes nothing. Any answer below 500 except 401 shows
// the server is back; a transport error or a 5xx (a proxy in front of a dead
// server) matches ErrRetryable, and a 401 (after one fresh token with client
// credentials) matches ErrUnauthorized.
func (c *Client) Probe(ctx context.Context) error {
	u := *c.base
	u.Path, u.RawPath = u.Path+"/apiops/projects/", u.RawPath+"/apiops/projects/"
	// One attempt: the breaker's own schedule is the retry.
	_, err := c.read(ctx, &request{method: http.MethodGet, url: u.String()}, &backoff.StopBackOff{})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode < 500 && apiErr.StatusCode != http.StatusUnauthorized {
		return nil
	}
	return err
}
