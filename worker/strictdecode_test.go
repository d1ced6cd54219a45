package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// looseJob is a key.delete job whose names encoding/json would have matched
// loosely or dropped.
type looseJob struct {
	name     string
	id       string
	header   bool // publish with Nats-Msg-Id set to the id
	body     string
	keys     []string // keys the body names, all of which must survive
	mentions []string // what the error message must name
}

// TestLooseFieldNamesFailWithInvalidJobAndZeroApinizerCalls publishes jobs
// whose names encoding/json would have matched loosely or dropped. Each names
// a key that exists, so a worker that ran it would delete it: each must
// instead fail with invalid_job, naming the field, without calling Apinizer.
func TestLooseFieldNamesFailWithInvalidJobAndZeroApinizerCalls(t *testing.T) {
	t.Parallel()
	cases := []looseJob{
		{
			name: "a misspelled jwkDeleteAction", id: "strict-unknown", header: true,
			body: `{"jobId":"strict-unknown","projectName":"` + project + `","keyName":"strict-1","jwkDeleteActoin":"DELETE"}`,
			keys: []string{"strict-1"}, mentions: []string{"jwkDeleteActoin", "unknown field"},
		},
		{
			name: "a keyName given twice", id: "strict-duplicate", header: true,
			body: `{"jobId":"strict-duplicate","projectName":"` + project + `","keyName":"strict-2a","keyName":"strict-2b"}`,
			keys: []string{"strict-2a", "strict-2b"}, mentions: []string{"keyName", "duplicate field"},
		},
		{
			name: "a KEYNAME beside keyName", id: "strict-case", header: true,
			body: `{"jobId":"strict-case","projectName":"` + project + `","keyName":"strict-3a","KEYNAME":"strict-3b"}`,
			keys: []string{"strict-3a", "strict-3b"}, mentions: []string{"KEYNAME", `must be spelled "keyName"`},
		},
		{
			name: "a KEYNAME before the jobId, without Nats-Msg-Id", id: "strict-case-late-id",
			body: `{"KEYNAME":"strict-4b","keyName":"strict-4a","projectName":"` + project + `","jobId":"strict-case-late-id"}`,
			keys: []string{"strict-4a", "strict-4b"}, mentions: []string{"KEYNAME"},
		},
	}
	b := setup(t)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range cases {
		for _, k := range c.keys {
			b.sim.AddKey(project, k)
		}
		msg := nats.NewMsg(jobs.SubjectKeyDelete)
		msg.Data = []byte(c.body)
		if c.header {
			msg.Header.Set(nats.MsgIdHdr, c.id)
		}
		if _, err := b.js.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish %s: %v", c.name, err)
		}
	}
	got := rs.next(t, len(cases), 20*time.Second)

	for _, c := range cases {
		t.Run(c.name+" fails with invalid_job naming the field", func(t *testing.T) {
			r, ok := got[c.id]
			if !ok {
				t.Fatal("no result")
			}
			if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "invalid_job" || r.Error.Retryable || r.Attempts != 0 {
				t.Fatalf("result %s after %d attempts, error %+v; want failed with invalid_job, not retryable, no attempt", r.Status, r.Attempts, r.Error)
			}
			for _, m := range c.mentions {
				if !strings.Contains(r.Error.Message, m) {
					t.Errorf("error message %q does not name %s", r.Error.Message, m)
				}
			}
			for _, k := range c.keys {
				if !b.sim.KeyExists(project, k) {
					t.Errorf("key %s was deleted", k)
				}
			}
		})
	}
	if reqs := b.sim.Requests(); len(reqs) != 0 {
		t.Errorf("the simulator received %d requests, want none", len(reqs))
	}
}
