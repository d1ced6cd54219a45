// Package poll waits, in tests, for a condition on something the test does
// not drive step by step (a server, another process): it checks often and
// gives up after a bound, so no wait is a guess and none is unbounded.
package poll

import (
	"testing"
	"time"
)

// Until checks cond every 5ms until it holds, failing the test if it does
// not within timeout; what says what was awaited.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
