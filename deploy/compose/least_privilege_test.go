package compose_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

const teamProject = "TeamA"

// provisioned starts the shipped server with the topology in place.
func provisioned(t *testing.T) (*server.Server, context.Context) {
	t.Helper()
	srv := runShippedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	_, operatorJS := connect(t, srv, operatorUser, &violationLog{})
	if err := streams.Provision(ctx, operatorJS, streams.Config{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	return srv, ctx
}

// TestTeamProducerPublishesOnlyItsProjectsScopedSubjects: apiops-producer-teama
// gets JetStream's ack for TeamA's scoped subjects, of both shapes, and a
// permissions violation for the bare subjects, another project's, and the
// result and dead-letter subjects its wildcards would otherwise reach.
func TestTeamProducerPublishesOnlyItsProjectsScopedSubjects(t *testing.T) {
	t.Parallel()
	srv, ctx := provisioned(t)
	_, teamJS := connect(t, srv, teamAUser, &violationLog{})
	for _, subject := range []string{
		"apiops.key.delete.TeamA",
		"apiops.certificate.update.TeamA",
		"apiops.credential.publickey.delete.TeamA",
	} {
		t.Run("the team publishes "+subject, func(t *testing.T) {
			if _, err := teamJS.Publish(ctx, subject, []byte("{}")); err != nil {
				t.Fatalf("publish: %v", err)
			}
		})
	}
	for _, subject := range []string{
		"apiops.key.delete",
		"apiops.credential.publickey.delete",
		"apiops.key.delete.TeamB",
		"apiops.credential.publickey.delete.TeamB",
		"apiops.results.key.delete.TeamA",
		"apiops.dlq.key.delete.TeamA",
	} {
		t.Run("the team may not publish "+subject, func(t *testing.T) {
			t.Parallel()
			v := &violationLog{}
			nc, _ := connect(t, srv, teamAUser, v)
			if err := nc.Publish(subject, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 5*time.Second, "the server to refuse it", func() bool { return len(v.list()) > 0 })
		})
	}
}

// TestTeamProducerRunsItsProjectsJobsOnly runs a worker and publishes as the
// team: a TeamA job comes back on TeamA's result subject; a job on TeamA's
// subject whose body names another project fails invalid_job, with no call
// to Apinizer.
func TestTeamProducerRunsItsProjectsJobsOnly(t *testing.T) {
	t.Parallel()
	srv, ctx := provisioned(t)
	violations := &violationLog{}
	sim := apinizertest.NewServer(apinizertest.Config{Token: simToken})
	t.Cleanup(sim.Close)
	sim.AddProject(teamProject, "production")
	sim.AddProject("TeamB", "production")
	sim.AddKey(teamProject, "team-key")
	sim.AddKey("TeamB", "other-key")
	_, workerJS := connect(t, srv, workerUser, violations)
	startWorker(t, ctx, workerJS, sim.URL, streams.Config{AckWait: 5 * time.Second, MaxDeliver: 5}.WithDefaults(), false)

	_, teamJS := connect(t, srv, teamAUser, violations)
	results := watchResults(t, ctx, teamJS, "apiops.results.*.*."+teamProject)
	publishScoped := func(jobID, project, key string) {
		t.Helper()
		msg, err := jobs.NewMsg(&jobs.KeyDelete{JobID: jobID, ProjectName: project, KeyName: key})
		if err != nil {
			t.Fatal(err)
		}
		msg.Subject = jobs.SubjectKeyDelete + "." + teamProject
		if _, err := teamJS.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish %s: %v", jobID, err)
		}
	}
	publishScoped("team-job", teamProject, "team-key")
	r := expectResult(t, ctx, results, "team-job", jobs.StatusSucceeded)
	if r.Subject != "apiops.key.delete.TeamA" {
		t.Errorf("result of a job on %s, want apiops.key.delete.TeamA", r.Subject)
	}

	publishScoped("smuggled-job", "TeamB", "other-key")
	r = expectResult(t, ctx, results, "smuggled-job", jobs.StatusFailed)
	if r.Error == nil || r.Error.Code != "invalid_job" || !strings.Contains(r.Error.Message, "projectName") {
		t.Errorf("error %+v, want invalid_job naming projectName", r.Error)
	}
	if !sim.KeyExists("TeamB", "other-key") {
		t.Error("TeamB's key was deleted through TeamA's subject")
	}
	if v := violations.list(); len(v) > 0 {
		t.Fatalf("permissions violations:\n%s", strings.Join(v, "\n"))
	}
}

// TestProducerCannotReadAnOperatorsDLQReply: an operator reads a dead
// letter (`enqueue dlq show`: a stream message get, answered on the
// operator's inbox). No producer or observer may subscribe where that answer
// goes, and none receives it.
func TestProducerCannotReadAnOperatorsDLQReply(t *testing.T) {
	t.Parallel()
	srv, ctx := provisioned(t)
	_, operatorJS := connect(t, srv, operatorUser, &violationLog{})
	const payload = "dead-letter-payload-DO-NOT-LEAK"
	rec := dlq.NewRecord(jobs.SubjectKeyDelete, nats.Header{nats.MsgIdHdr: {"dead-job"}}, []byte(`{"jobId":"dead-job","note":"`+payload+`"}`), dlq.ReasonInvalid)
	rec.JobID, rec.StreamSeq = "dead-job", 1
	if err := dlq.Publish(ctx, operatorJS, rec); err != nil {
		t.Fatal(err)
	}

	var leaked atomic.Int64
	type snoop struct {
		conn    *nats.Conn
		refused *violationLog
	}
	var snoops []snoop
	for _, who := range everyProducer {
		for _, subject := range []string{"_INBOX.>", operatorUser.inboxPrefix() + ".>", ">"} {
			v := &violationLog{}
			nc, _ := connect(t, srv, who, v)
			if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
				if strings.Contains(string(m.Data), payload) {
					leaked.Add(1)
				}
			}); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 5*time.Second, who.user+" to be refused a subscription to "+subject, func() bool { return len(v.list()) > 0 })
			snoops = append(snoops, snoop{nc, v})
		}
	}

	// By sequence: a stream message get, as `enqueue dlq show 1`.
	got, err := dlq.Get(ctx, operatorJS, "1")
	if err != nil {
		t.Fatalf("the operator reads the dead letter: %v", err)
	}
	if !strings.Contains(got.Payload, payload) {
		t.Fatalf("the operator's read lacks the payload: %+v", got)
	}
	// The server queues a message for every matching subscription before
	// the operator gets it; a round trip on each snooping connection after
	// that drains whatever was queued for it.
	for _, s := range snoops {
		if err := s.conn.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if n := leaked.Load(); n > 0 {
		t.Fatalf("LEAK: %d producer subscription(s) received the operator's dead letter", n)
	}
}

// TestProducerCannotCreateADurableConsumerOutsideItsAllowance: the team
// producer may create consumers on APIOPS_RESULTS filtered to its own
// results only, and no producer may create a consumer on the jobs or the
// dead letters, use the durable API, or delete a consumer.
func TestProducerCannotCreateADurableConsumerOutsideItsAllowance(t *testing.T) {
	t.Parallel()
	srv, ctx := provisioned(t)
	_, operatorJS := connect(t, srv, operatorUser, &violationLog{})
	if _, err := operatorJS.CreateConsumer(ctx, streams.Results, jetstream.ConsumerConfig{Durable: "operators-watch"}); err != nil {
		t.Fatal(err)
	}
	durable := func(name string, filter string) func(context.Context, jetstream.JetStream, string) error {
		return func(ctx context.Context, js jetstream.JetStream, stream string) error {
			_, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: name, FilterSubject: filter})
			return err
		}
	}
	for _, tc := range []struct {
		name   string
		who    account
		stream string
		try    func(context.Context, jetstream.JetStream, string) error
	}{
		{"a team durable on every result", teamAUser, streams.Results, durable("team-all", "")},
		{"a team durable on another team's results", teamAUser, streams.Results, durable("team-b", "apiops.results.*.*.TeamB")},
		{"a team durable on the jobs", teamAUser, streams.Jobs, durable("team-thief", "")},
		{"a durable on the jobs", producerUser, streams.Jobs, durable("thief", "")},
		{"a durable on the dead letters", producerUser, streams.DeadLetters, durable("reader", "")},
		{"an observer's durable on the jobs", observerUser, streams.Jobs, durable("observer-thief", "")},
		{"deleting the operator's consumer", producerUser, streams.Results, func(ctx context.Context, js jetstream.JetStream, stream string) error {
			return js.DeleteConsumer(ctx, stream, "operators-watch")
		}},
		{"deleting the operator's consumer as the team", teamAUser, streams.Results, func(ctx context.Context, js jetstream.JetStream, stream string) error {
			return js.DeleteConsumer(ctx, stream, "operators-watch")
		}},
		{"deleting the worker's consumer", producerUser, streams.Jobs, func(ctx context.Context, js jetstream.JetStream, stream string) error {
			return js.DeleteConsumer(ctx, stream, streams.Consumer)
		}},
	} {
		t.Run(tc.who.user+" is refused "+tc.name, func(t *testing.T) {
			t.Parallel()
			v := &violationLog{}
			_, js := connect(t, srv, tc.who, v)
			tryCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := tc.try(tryCtx, js, tc.stream); err == nil {
				t.Fatal("the server accepted it")
			}
			poll.Until(t, 5*time.Second, "the server to report a permissions violation", func() bool { return len(v.list()) > 0 })
		})
	}
	t.Run("the legacy durable API is refused to every producer", func(t *testing.T) {
		t.Parallel()
		for _, who := range everyProducer {
			v := &violationLog{}
			nc, _ := connect(t, srv, who, v)
			cfg, _ := json.Marshal(map[string]any{"stream_name": streams.Results, "config": map[string]any{"durable_name": "legacy"}})
			if err := nc.Publish("$JS.API.CONSUMER.DURABLE.CREATE."+streams.Results+".legacy", cfg); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 5*time.Second, who.user+" to be refused", func() bool { return len(v.list()) > 0 })
		}
	})
	// Once every subtest, the refused deletes included, has run.
	t.Cleanup(func() {
		if _, err := operatorJS.Consumer(context.Background(), streams.Results, "operators-watch"); err != nil {
			t.Errorf("the operator's consumer after the refused deletes: %v", err)
		}
	})
	t.Run("the team may watch its own results", func(t *testing.T) {
		t.Parallel()
		v := &violationLog{}
		_, js := connect(t, srv, teamAUser, v)
		watchResults(t, ctx, js, "apiops.results.*.*."+teamProject)
		watchResults(t, ctx, js, "apiops.results.*.*.*."+teamProject)
		if got := v.list(); len(got) > 0 {
			t.Fatalf("permissions violations: %v", got)
		}
	})
}
