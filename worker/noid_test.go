package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestHostileMessagesWithoutAUsableJobIDEachGetOneFailedResult publishes the
// messages that name no usable job id (none, too long, a control character,
// on a known or an unknown subject) and one whose body id is broken but whose
// header id is good: every one gets exactly one failed result, keyed by its
// stream sequence with jobId null (or by the good header id), and a dead
// letter; none reaches Apinizer. No message the jobs stream accepts goes
// without a result.
func TestHostileMessagesWithoutAUsableJobIDEachGetOneFailedResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, workerOpts{concurrency: 2})
	keyJob := func(id string) []byte {
		m := map[string]any{"projectName": project, "keyName": "k"}
		if id != "" {
			m["jobId"] = id
		}
		return []byte(mustJSON(t, m))
	}
	long := strings.Repeat("i", 300)
	cases := []struct {
		name      string
		subject   string
		headerID  string
		body      []byte
		code      string
		jobID     string // "" for a result keyed by stream sequence
		resultSub string
	}{
		{"a job with no id at all", jobs.SubjectKeyDelete, "", keyJob(""), "missing_field", "", "apiops.results.key.delete"},
		{"a 300-byte jobId", jobs.SubjectKeyDelete, "", keyJob(long), "invalid_field", "", "apiops.results.key.delete"},
		{"a newline in the jobId", jobs.SubjectKeyDelete, "", keyJob("id\nx"), "invalid_field", "", "apiops.results.key.delete"},
		{"a 300-byte Nats-Msg-Id and no jobId", jobs.SubjectKeyDelete, long, keyJob(""), "invalid_field", "", "apiops.results.key.delete"},
		{"a body that is not JSON and no header id", jobs.SubjectCredentialDelete, "", []byte("\x00 not json"), "malformed_job", "", "apiops.results.credential.delete"},
		{"no id on an unknown subject", "apiops.certificate.rename", "", []byte(`{"projectName":"P"}`), "unknown_subject", "", jobs.InvalidResultSubject},
		{"a newline in the jobId beside a good Nats-Msg-Id", jobs.SubjectKeyDelete, "good-header-id", keyJob("id\nx"), "job_id_mismatch", "good-header-id", "apiops.results.key.delete"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seqs := make([]uint64, len(cases))
	for i, c := range cases {
		msg := nats.NewMsg(c.subject)
		msg.Data = c.body
		if c.headerID != "" {
			msg.Header.Set(nats.MsgIdHdr, c.headerID)
		}
		ack, err := b.js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatalf("publish %s: %v", c.name, err)
		}
		seqs[i] = ack.Sequence
	}
	poll.Until(t, 30*time.Second, "a result for every message", func() bool {
		return b.streamMsgs(t, streams.Results) >= uint64(len(cases))
	})
	poll.Until(t, 10*time.Second, "the jobs stream to be empty", func() bool { return b.streamMsgs(t, streams.Jobs) == 0 })

	type raw struct {
		subject, msgID string
		body           map[string]any
		result         jobs.Result
	}
	cons, err := b.js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var all []raw
	for range b.streamMsgs(t, streams.Results) {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		r := raw{subject: msg.Subject(), msgID: msg.Headers().Get(nats.MsgIdHdr)}
		if err := json.Unmarshal(msg.Data(), &r.body); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(msg.Data(), &r.result); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	dead := map[uint64]int{}
	for _, d := range deadLetters(t, b) {
		dead[d.StreamSeq]++
	}
	for i, c := range cases {
		t.Run(c.name+" gets one failed result", func(t *testing.T) {
			var mine []raw
			for _, r := range all {
				if (c.jobID != "" && r.result.JobID == c.jobID) || (c.jobID == "" && r.result.StreamSeq == seqs[i]) {
					mine = append(mine, r)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("%d results, want exactly 1", len(mine))
			}
			r := mine[0]
			if r.result.Status != jobs.StatusFailed || r.result.Error == nil || r.result.Error.Code != c.code || r.result.Attempts != 0 {
				t.Errorf("result %s, %d attempts, error %+v; want failed with %s and no attempt", r.result.Status, r.result.Attempts, r.result.Error, c.code)
			}
			if r.subject != c.resultSub {
				t.Errorf("published on %s, want %s", r.subject, c.resultSub)
			}
			if c.jobID == "" {
				if id, present := r.body["jobId"]; !present || id != nil {
					t.Errorf("jobId is %#v (present %t), want null", id, present)
				}
				if want := jobs.SeqResultMsgID(seqs[i]); r.msgID != want {
					t.Errorf("Nats-Msg-Id %q, want %q", r.msgID, want)
				}
			} else if want := jobs.ResultMsgID(c.jobID); r.msgID != want {
				t.Errorf("Nats-Msg-Id %q, want %q", r.msgID, want)
			}
			if dead[seqs[i]] != 1 {
				t.Errorf("dead-lettered %d times, want once", dead[seqs[i]])
			}
		})
	}
	if len(all) != len(cases) {
		t.Errorf("%d results, want %d (one per message)", len(all), len(cases))
	}
	if n := len(b.sim.Requests()); n != 0 {
		t.Errorf("the simulator received %d requests, want none", n)
	}
}
