package worker_test

import (
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestHalfOutageSpendsNoDeliveryAndEveryJobSucceedsOnceAfter makes Apinizer
// half there: the probe's GET answers while every write fails or hangs. A
// probe alone must not close the breaker: it lets one trial call through,
// whose failure opens it again, so the jobs wait in-process and no delivery
// beyond the first is spent while the half outage lasts. Once writes work,
// every job succeeds exactly once.
func TestHalfOutageSpendsNoDeliveryAndEveryJobSucceedsOnceAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault apinizertest.Fault
	}{
		{"writes answer 503", apinizertest.Fault{Method: "DELETE", Reply: apinizertest.ErrorReply(503, "service_unavailable", "write path down")}},
		{"writes hang", apinizertest.Fault{Method: "DELETE", Hang: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			all := b.keyDeletes(8, "half-%d", "half-outage-")
			b.sim.AddFault(tc.fault)
			b.startWorker(t, workerOpts{concurrency: 4,
				executor: func(c *executor.Config) { c.AttemptTimeout = 200 * time.Millisecond }})
			b.publish(t, all...)
			poll.Until(t, 10*time.Second, "writes to reach the failing Apinizer", func() bool {
				for _, r := range b.sim.Requests() {
					if r.Method == "DELETE" {
						return true
					}
				}
				return false
			})

			// Three ack waits: long enough for any spent delivery to show.
			lasting(3 * b.topo.AckWait)
			info := consumerInfo(t, b)
			if info.NumRedelivered != 0 {
				t.Errorf("%d jobs redelivered during the half outage, want 0 (no delivery spent beyond the first)", info.NumRedelivered)
			}
			if n := b.streamMsgs(t, streams.Results); n != 0 {
				t.Errorf("%d results during the half outage, want none (no job failed)", n)
			}
			if n := b.streamMsgs(t, streams.DeadLetters); n != 0 {
				t.Errorf("%d dead letters during the half outage, want none", n)
			}
			probes := 0
			for _, r := range b.sim.Requests() {
				if r.Method == "GET" {
					probes++
				}
			}
			if probes == 0 {
				t.Error("no probe reached Apinizer: the test did not make a half outage")
			}

			b.sim.ClearFaults()
			requireEachSucceededOnce(t, b, all, false)
			for _, j := range all {
				if b.sim.KeyExists(project, j.Resource().Name) {
					t.Errorf("%s: the key still exists", j.ID())
				}
			}
		})
	}
}
