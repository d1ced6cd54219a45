package worker_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
)

// TestAttemptsCountHTTPRequestsOnly gives a job two deliveries that end
// before any request is sent (the token cannot be read), then a third that
// sends one: its result reports one attempt, not three.
func TestAttemptsCountHTTPRequestsOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := b.keyDeletes(1, "counted-%d", "attempts-")
	var reads atomic.Int32
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{executor: func(c *executor.Config) {
		c.Token = func() (string, error) {
			if reads.Add(1) <= 2 {
				return "", errors.New("token file: no such file")
			}
			return token, nil
		}
	}})
	b.publish(t, all...)
	r := rs.next(t, 1, 20*time.Second)[all[0].ID()]
	// An unreadable token pauses the worker as a refused one does; its
	// probes (GET /apiops/projects/) are not the job's requests.
	deletes := 0
	for _, req := range b.sim.Requests() {
		if req.Method == http.MethodDelete {
			deletes++
		}
	}
	if r.Attempts != 1 || deletes != 1 {
		t.Errorf("result reports %d attempts after %d of the job's HTTP requests, want 1 and 1", r.Attempts, deletes)
	}
	if reads.Load() < 3 {
		t.Errorf("the token was read %d times, want at least 3: the test did not fail two deliveries before sending", reads.Load())
	}
}
