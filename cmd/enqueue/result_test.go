package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestResultTellsQueuedAndInProgressApart runs result against a server with
// no worker: a published job waits in the jobs stream (queued), and once a
// worker has claimed it in the ledger it is in progress. The scripts cover
// unknown and final, where a worker runs.
func TestResultTellsQueuedAndInProgressApart(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.Provision(ctx, js, streams.Config{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"NATS_URL": srv.ClientURL()}
	enqueue := func(args ...string) (stdout, stderr string, code int) {
		var out, errOut strings.Builder
		err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
		code = exitCode(err, &errOut)
		return out.String(), errOut.String(), code
	}
	for i := range 3 { // jobs ahead of it in the stream
		if _, stderr, code := enqueue("key", "delete", "--project", "P", "--name", "other", "--id", "other-"+string(rune('a'+i))); code != 0 {
			t.Fatalf("publish: exit %d: %s", code, stderr)
		}
	}
	if _, stderr, code := enqueue("key", "delete", "--project", "P", "--name", "k", "--id", "waiting"); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}

	for _, c := range []struct {
		name, jobID string
		code        int
		says        string
	}{
		{"a job in the stream that no worker started is queued", "waiting", exitQueued, `job "waiting" is queued`},
		{"a job never published is unknown", "nowhere", exitUnknown, `no record of job "nowhere"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := enqueue("result", c.jobID)
			if code != c.code || !strings.Contains(stderr, c.says) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q: want exit %d saying %q", code, stdout, stderr, c.code, c.says)
			}
		})
	}

	t.Run("a job a worker has claimed is in progress", func(t *testing.T) {
		kv, err := js.KeyValue(ctx, streams.LedgerBucket)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.New(kv, ledger.Config{Owner: "test-worker"})
		if err != nil {
			t.Fatal(err)
		}
		res := jobs.ResourceKey{Project: "P", Kind: jobs.KindKey, Name: "k"}
		if _, err := l.Claim(ctx, "waiting", res, ledger.Delivery{N: 1}); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := enqueue("result", "waiting")
		if code != exitInProgress || !strings.Contains(stderr, `job "waiting" is in progress`) || stdout != "" {
			t.Errorf("exit %d, stdout %q, stderr %q: want exit %d, in progress", code, stdout, stderr, exitInProgress)
		}
	})
}
