package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// TestTheConsumersLastDeliveryGivesUp runs a worker given no delivery limit
// of its own on a consumer that allows two deliveries: the job still gives
// up on the second, as the worker reads the limit from the consumer.
func TestTheConsumersLastDeliveryGivesUp(t *testing.T) {
	t.Parallel()
	st := workertest.Start(t, streams.Config{AckWait: 3 * time.Second, MaxDeliver: 2, DuplicateWindow: time.Minute})
	b := &bundle{js: st.JS, nc: st.NC, sim: st.Sim, pem: newPEM(t), topo: st.Topology, stack: st}
	st.Sim.AddKey(project, "throttled")
	// A 429 is an answer: the job is retried, and the breaker stays closed.
	st.Sim.AddFault(apinizertest.Fault{PathPrefix: "/apiops/projects/MyProject/keys/throttled/", Reply: apinizertest.HTMLReply(429)})
	rs := b.watchResults(t)
	st.StartWorker(t, workertest.Worker{Config: worker.Config{
		Concurrency:     2,
		RedeliveryDelay: func(uint64) time.Duration { return 100 * time.Millisecond },
		Logger:          testLogger(t),
	}})

	b.publish(t, &jobs.KeyDelete{JobID: "throttled", ProjectName: project, KeyName: "throttled"})
	r := rs.next(t, 1, 30*time.Second)["throttled"]
	if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "retries_exhausted" || !strings.Contains(r.Error.Message, "after 2 deliveries") {
		t.Fatalf("result %s %+v, want failed with retries_exhausted after 2 deliveries", r.Status, r.Error)
	}
	recs := deadLetters(t, b)
	if len(recs) != 1 || recs[0].Reason != dlq.ReasonMaxDeliveries || recs[0].Deliveries != 2 {
		t.Errorf("dead letters %+v, want the job, for %s after 2 deliveries", recs, dlq.ReasonMaxDeliveries)
	}
}

// A call longer than the ack wait keeps its delivery: progress is reported
// every third of the ack wait, so the server never redelivers the job.
func TestACallLongerThanTheAckWaitIsNotRedelivered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddKey(project, "slow")
	b.sim.SetLatency(2 * b.topo.AckWait)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})

	b.publish(t, &jobs.KeyDelete{JobID: "slow", ProjectName: project, KeyName: "slow"})
	r := rs.next(t, 1, 30*time.Second)["slow"]
	if r.Status != jobs.StatusSucceeded || r.Attempts != 1 {
		t.Errorf("result: %s after %d attempts, want succeeded after 1", r.Status, r.Attempts)
	}
	cons, err := b.js.Consumer(context.Background(), streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	if n := cons.CachedInfo().Delivered.Consumer; n != 1 {
		t.Errorf("the job was delivered %d times, want once", n)
	}
	if n := len(b.sim.Requests()); n != 1 {
		t.Errorf("simulator received %d requests, want 1", n)
	}
}
