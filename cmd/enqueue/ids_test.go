package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

func TestJudgeComparesAGivenIDWithItsLedgerRecord(t *testing.T) {
	t.Parallel()
	keyDelete := &jobs.KeyDelete{JobID: "k-1", ProjectName: "P", KeyName: "key-1"}
	final := func(subject, project, name string) ledger.JobRecord {
		return ledger.JobRecord{JobID: "k-1", State: ledger.StateFinal,
			Result: &jobs.Result{JobID: "k-1", Subject: subject, ProjectName: project, ResourceName: name, Status: jobs.StatusSucceeded}}
	}
	tests := []struct {
		name      string
		rec       ledger.JobRecord
		found     bool
		published bool
		stored    bool // the record's result is taken as the job's
		taken     bool
	}{
		{name: "an id with no record is published", published: true},
		{name: "the same job ended is not published, its result stands", found: true, rec: final("apiops.key.delete", "P", "key-1"), stored: true},
		{name: "the same job on its scoped subject is the same job", found: true, rec: final("apiops.key.delete.P", "P", "key-1"), stored: true},
		{name: "another kind of job under the id is refused", found: true, rec: final("apiops.credential.delete", "P", "key-1"), taken: true},
		{name: "another project's job under the id is refused", found: true, rec: final("apiops.key.delete", "Q", "key-1"), taken: true},
		{name: "another resource's job under the id is refused", found: true, rec: final("apiops.key.delete", "P", "key-2"), taken: true},
		{name: "an invalid job under the id is refused", found: true, rec: final("apiops.key.delete", "", ""), taken: true},
		{name: "a job in progress is not published", found: true, rec: ledger.JobRecord{JobID: "k-1", State: ledger.StateRunning}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			list := []outgoing{{job: keyDelete, subject: "apiops.key.delete", givenID: true}}
			priors, taken := judge(list, []ledger.JobRecord{tc.rec}, []bool{tc.found})
			if tc.taken {
				if len(taken) != 1 || !errors.Is(taken[0], errIDTaken) {
					t.Fatalf("taken %v, want one error matching errIDTaken", taken)
				}
				return
			}
			if len(taken) != 0 {
				t.Fatalf("taken %v, want none", taken)
			}
			p := priors[0]
			if p.published() != tc.published || (p.result != nil) != tc.stored {
				t.Errorf("published %v, stored result %v: want %v, %v", p.published(), p.result != nil, tc.published, tc.stored)
			}
		})
	}
}

func TestIDTakenErrorNamesBothJobs(t *testing.T) {
	t.Parallel()
	err := &idTakenError{
		at:    "line 2",
		asked: &jobs.CredentialDelete{JobID: "k-1", ProjectName: "P", Username: "user-1"},
		was: jobs.Result{JobID: "k-1", Subject: "apiops.key.delete", ProjectName: "P", ResourceName: "key-1",
			Status: jobs.StatusSucceeded, FinishedAt: time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)},
	}
	want := `line 2: job id "k-1" already names another job: apiops.key.delete P/key-1, which ended succeeded at 2026-12-01T07:00:00Z; this job is apiops.credential.delete P/user-1`
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestLookUpIDsReadsInBatchesWhatItReadsOneByOne checks the batched ledger
// read against single reads, over more ids than one batch holds, with
// records present, deleted and never written.
func TestLookUpIDsReadsInBatchesWhatItReadsOneByOne(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.Provision(ctx, js, streams.Config{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	var (
		list []outgoing
		ids  []string
		want = map[string]bool{}
	)
	for i := range 2*lookupBatch + 10 {
		id := fmt.Sprintf("job-%d", i)
		ids = append(ids, id)
		list = append(list, outgoing{job: &jobs.KeyDelete{JobID: id, ProjectName: "P", KeyName: "k"}, givenID: i%7 != 0})
		if i%3 != 0 {
			continue
		}
		if _, err := kv.Put(ctx, ledger.JobKey(id), []byte(`{"jobId":"`+id+`","state":"running"}`)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := kv.Delete(ctx, ledger.JobKey(id)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want[id] = i%7 != 0 // an id not given is not looked up
	}
	recs, found, err := lookUpIDs(ctx, nc, js, list)
	if err != nil {
		t.Fatal(err)
	}
	one, err := readEach(ctx, kv, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range list {
		id := o.job.ID()
		_, oneFound := one[id]
		if found[i] != want[id] || (o.givenID && found[i] != oneFound) || (found[i] && recs[i].JobID != id) {
			t.Errorf("%s (given %v): found %v (record of %q), one by one %v; want %v", id, o.givenID, found[i], recs[i].JobID, oneFound, want[id])
		}
	}

	// A bucket without direct gets answers no batched read: the ids are
	// read one by one instead.
	s, err := js.Stream(ctx, "KV_"+streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := readBatch(ctx, nc, ids[:1]); !errors.Is(err, errNoBatchRead) {
		t.Fatalf("batched read without direct gets: %v, want errNoBatchRead", err)
	}
	_, again, err := lookUpIDs(ctx, nc, js, list)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(found, again); diff != "" {
		t.Errorf("found without direct gets (-with +without):\n%s", diff)
	}
}

// syncBuffer is a writer a test reads while enqueue writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReusedIDsTheLedgerCannotJudge covers what the scripts cannot stage
// with their worker always running: an id held by a worker, and an id
// whose job is still queued, which the server's duplicate window catches
// and, with --wait, the result that comes under it.
func TestReusedIDsTheLedgerCannotJudge(t *testing.T) {
	t.Parallel()
	stack := workertest.Start(t, streams.Config{})
	stack.Sim.AddKey(workertest.Project, "key-1")
	stack.Sim.AddCredential(workertest.Project, "user-1", true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := map[string]string{"NATS_URL": stack.Server.ClientURL()}
	enqueue := func(stderr *syncBuffer, args ...string) (stdout string, code int) {
		var out strings.Builder
		err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, stderr)
		return out.String(), exitCode(err, stderr)
	}
	queued := func() uint64 {
		s, err := stack.JS.Stream(ctx, streams.Jobs)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Msgs
	}

	t.Run("a job a worker holds is not published again", func(t *testing.T) {
		kv, err := stack.JS.KeyValue(ctx, streams.LedgerBucket)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.New(kv, ledger.Config{Owner: "test-worker"})
		if err != nil {
			t.Fatal(err)
		}
		// A delivery that waited for its resource leaves a running record
		// (a claim itself lives in the resource's record, which the
		// lookup does not read: a claimed job is caught by the server's
		// duplicate window, or by --wait's comparison).
		if err := l.Waited(ctx, "held", 1); err != nil {
			t.Fatal(err)
		}
		var stderr syncBuffer
		stdout, code := enqueue(&stderr, "key", "delete", "--project", workertest.Project, "--name", "key-1", "--id", "held")
		if code != 0 || stdout != "held\n" || !strings.Contains(stderr.String(), `job "held" already exists and is in progress; not published again`) {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr.String())
		}
		if n := queued(); n != 0 {
			t.Errorf("%d job(s) in the stream, want none", n)
		}
	})

	var stderr syncBuffer
	if stdout, code := enqueue(&stderr, "key", "delete", "--project", workertest.Project, "--name", "key-1", "--id", "queued"); code != 0 {
		t.Fatalf("publish: exit %d, stdout %q, stderr %q", code, stdout, stderr.String())
	}

	t.Run("a queued job's id is dropped by the server, and enqueue says so", func(t *testing.T) {
		var stderr syncBuffer
		stdout, code := enqueue(&stderr, "credential", "delete", "--project", workertest.Project, "--name", "user-1", "--id", "queued")
		if code != 0 || stdout != "queued\n" || !strings.Contains(stderr.String(), `job "queued": a job with this id was published within the duplicate window and has not finished, so the server dropped this one`) {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr.String())
		}
		if n := queued(); n != 1 {
			t.Errorf("%d job(s) in the stream, want the first one only", n)
		}
	})

	t.Run("with --wait, the queued job's result is reported as another job's, not as this one's", func(t *testing.T) {
		var stderr syncBuffer
		type outcome struct {
			stdout string
			code   int
		}
		done := make(chan outcome, 1)
		go func() {
			stdout, code := enqueue(&stderr, "credential", "delete", "--project", workertest.Project, "--name", "user-1", "--id", "queued", "--wait", "--timeout", "30s")
			done <- outcome{stdout, code}
		}()
		// Once the publish was dropped, the ledger was read already: the
		// worker may run the queued job now.
		poll.Until(t, 20*time.Second, "the publish to be dropped", func() bool {
			return strings.Contains(stderr.String(), "the server dropped this one")
		})
		stack.StartWorker(t, workertest.Worker{})
		var got outcome
		select {
		case got = <-done:
		case <-ctx.Done():
			t.Fatal("enqueue --wait did not return")
		}
		want := `job id "queued" already names another job: apiops.key.delete MyProject/key-1, which ended succeeded at `
		if got.code != 2 || got.stdout != "" || !strings.Contains(stderr.String(), want) ||
			!strings.Contains(stderr.String(), "this job is apiops.credential.delete MyProject/user-1") {
			t.Errorf("exit %d, stdout %q, stderr %q: want exit 2, no result, and %q", got.code, got.stdout, stderr.String(), want)
		}
		if _, ok := stack.Sim.Credential(workertest.Project, "user-1"); !ok {
			t.Error("the credential was deleted: only the key delete should have run")
		}
	})
}
