package jobs_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a NATS server or connection
// goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
