// Package compose holds the Docker Compose stack (docker-compose.yml) and the
// test of the NATS users it ships (nats.conf, nats-auth.conf): the files are
// not Go, the test is.
package compose_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// The users of nats-auth.conf. Each authenticates with the NKey seed of
// secrets/nats-<user>.nk and receives replies on _INBOX_<user>.
var (
	workerUser    = account{"apiops-worker"}
	workerNPUser  = account{"apiops-worker-np"}
	producerUser  = account{"apiops-producer"}
	teamAUser     = account{"apiops-producer-teama"}
	observerUser  = account{"apiops-observer"}
	operatorUser  = account{"apiops-operator"}
	everyProducer = []account{producerUser, teamAUser, observerUser}
)

type account struct{ user string }

func (a account) seedFile() string    { return "secrets/nats-" + a.user + ".nk" }
func (a account) inboxPrefix() string { return "_INBOX_" + a.user }

const (
	project  = "MyProject"
	simToken = "permissions-test-token"
)

// TestShippedNATSUsersRunTheService starts nats-server from the shipped
// nats.conf (with nats-auth.conf) and runs the service with its restricted
// users: a real worker takes jobs as apiops-worker (provisioning at start-up)
// or apiops-worker-np (--no-provision, topology provisioned by the operator), and
// a producer publishes jobs, reads their results from APIOPS_RESULTS and from
// the ledger as apiops-producer. Every path that uses its own JetStream API
// subject runs: a job applied, the circuit breaker pausing the consumer while
// Apinizer is down, and a stranded job handled from its advisory (read,
// dead-lettered, deleted from the work queue). Any permissions violation the
// server reports to a client fails the test with the subject.
func TestShippedNATSUsersRunTheService(t *testing.T) {
	for _, tc := range []struct {
		name      string
		worker    account
		provision bool
	}{
		{"a worker that provisions the topology", workerUser, true},
		{"a worker with --no-provision", workerNPUser, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := runShippedServer(t)
			violations := &violationLog{}
			topo := streams.Config{AckWait: 5 * time.Second, MaxDeliver: 5}.WithDefaults()

			// The operator provisions, as with the nats CLI;
			// a provisioning worker then creates-or-updates the same objects.
			_, operatorJS := connect(t, srv, operatorUser, violations)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := streams.Provision(ctx, operatorJS, topo); err != nil {
				t.Fatalf("operator provisions: %v", err)
			}

			sim := apinizertest.NewServer(apinizertest.Config{Token: simToken})
			t.Cleanup(sim.Close)
			sim.AddProject(project, "production")
			for _, k := range []string{"applied", "during-outage", "stranded"} {
				sim.AddKey(project, k)
			}

			_, workerJS := connect(t, srv, tc.worker, violations)
			startWorker(t, ctx, workerJS, sim.URL, topo, tc.provision)

			_, prodJS := connect(t, srv, producerUser, violations)
			// Every result from the start: the stream is new, and an ordered
			// consumer delivering only new results recreates itself at its
			// first fetch, missing a result published before it.
			results := watchResults(t, ctx, prodJS, "")

			// 1. A job applied end to end.
			publish(t, ctx, prodJS, "applied")
			expectResult(t, ctx, results, "applied", jobs.StatusSucceeded)
			kv, err := prodJS.KeyValue(ctx, streams.LedgerBucket)
			if err != nil {
				t.Fatalf("producer opens the ledger: %v", err)
			}
			if rec, err := ledger.ReadJob(ctx, kv, "applied"); err != nil || rec.State != ledger.StateFinal {
				t.Fatalf("producer reads the ledger: %+v, %v; want a final record", rec, err)
			}

			// 2. Apinizer down: the breaker pauses the jobs consumer, and the
			// job waits for Apinizer to return.
			sim.Stop()
			publish(t, ctx, prodJS, "during-outage")
			poll.Until(t, 30*time.Second, "the breaker to pause the jobs consumer", func() bool {
				info, err := operatorConsumer(ctx, operatorJS)
				return err == nil && info.Paused
			})
			if err := sim.Restart(); err != nil {
				t.Fatal(err)
			}
			expectResult(t, ctx, results, "during-outage", jobs.StatusSucceeded)

			// 3. A job the server gave up on: the operator holds the consumer
			// so that no worker takes the job, and publishes the advisory
			// the server would publish after max deliveries.
			if _, err := operatorJS.PauseConsumer(ctx, streams.Jobs, streams.Consumer, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			ack := publish(t, ctx, prodJS, "stranded")
			adv, _ := json.Marshal(map[string]any{
				"type": "io.nats.jetstream.advisory.v1.max_deliver", "stream": streams.Jobs, "consumer": streams.Consumer,
				"stream_seq": ack.Sequence, "deliveries": topo.MaxDeliver,
			})
			if _, err := operatorJS.Publish(ctx, streams.AdvisorySubjects[0], adv); err != nil {
				t.Fatal(err)
			}
			expectResult(t, ctx, results, "stranded", jobs.StatusFailed)
			poll.Until(t, 10*time.Second, "the stranded job to leave the work queue and enter the dead-letter queue", func() bool {
				jobsInfo, err1 := streamInfo(ctx, operatorJS, streams.Jobs)
				dlqInfo, err2 := streamInfo(ctx, operatorJS, streams.DeadLetters)
				return err1 == nil && err2 == nil && jobsInfo.State.Msgs == 0 && dlqInfo.State.Msgs == 1
			})

			// Still able to pull after the whole run.
			if _, err := operatorJS.ResumeConsumer(ctx, streams.Jobs, streams.Consumer); err != nil {
				t.Fatal(err)
			}
			if v := violations.list(); len(v) > 0 {
				t.Fatalf("permissions violations (add the subject to nats-auth.conf and say why in docs/deployment.md):\n%s", strings.Join(v, "\n"))
			}
		})
	}
}

// TestUsersCannotStepOutsideTheirGrants checks the other side: a producer
// cannot write the ledger or results, nor read dead letters; a worker cannot
// touch other streams or publish jobs; the observer changes nothing.
func TestUsersCannotStepOutsideTheirGrants(t *testing.T) {
	t.Parallel()
	srv := runShippedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, operatorJS := connect(t, srv, operatorUser, &violationLog{})
	if err := streams.Provision(ctx, operatorJS, streams.Config{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who     account
		subject string
	}{
		{producerUser, "$KV.apiops_ledger.job.x"},
		{producerUser, "apiops.results.key.delete"},
		{producerUser, "$JS.API.STREAM.DELETE.APIOPS_JOBS"},
		{producerUser, "$JS.API.CONSUMER.MSG.NEXT.APIOPS_JOBS.apiops-worker"},
		{workerUser, "apiops.key.delete"},
		{workerUser, "$JS.API.STREAM.DELETE.APIOPS_JOBS"},
		{workerUser, "$JS.API.STREAM.PURGE.APIOPS_RESULTS"},
		{workerNPUser, "$JS.API.STREAM.CREATE.APIOPS_JOBS"},
		{workerNPUser, "$JS.API.CONSUMER.CREATE.APIOPS_JOBS.apiops-worker"},
		{producerUser, "$JS.API.STREAM.MSG.GET.APIOPS_DLQ"},
		{producerUser, "$JS.API.CONSUMER.DELETE.APIOPS_RESULTS.someone-elses"},
		{teamAUser, "$JS.API.STREAM.MSG.GET.APIOPS_DLQ"},
		{teamAUser, "$JS.API.DIRECT.GET.APIOPS_RESULTS"},
		{teamAUser, "$KV.apiops_ledger.job.x"},
		{observerUser, "apiops.key.delete"},
		{observerUser, "apiops.key.delete.TeamA"},
		{observerUser, "$JS.API.STREAM.MSG.GET.APIOPS_DLQ"},
		{observerUser, "$JS.API.CONSUMER.CREATE.APIOPS_DLQ.reader"},
		{observerUser, "$KV.apiops_ledger.job.x"},
	} {
		t.Run(tc.who.user+" may not publish to "+tc.subject, func(t *testing.T) {
			v := &violationLog{}
			nc, _ := connect(t, srv, tc.who, v)
			if err := nc.Publish(tc.subject, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 5*time.Second, "the server to refuse it", func() bool { return len(v.list()) > 0 })
		})
	}
}

// runShippedServer starts nats-server from nats.conf, as shipped, on a random
// local port with its store in a temporary directory.
func runShippedServer(t *testing.T) *server.Server {
	t.Helper()
	opts, err := server.ProcessConfigFile("nats.conf")
	if err != nil {
		t.Fatalf("load nats.conf: %v", err)
	}
	if len(opts.Users)+len(opts.Nkeys) == 0 {
		t.Fatal("nats.conf defines no users")
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// violationLog collects the permissions violations reported to clients.
type violationLog struct {
	mu   sync.Mutex
	errs []string
}

func (v *violationLog) add(who string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, who+": "+err.Error())
}

func (v *violationLog) list() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.errs)
}

func connect(t *testing.T, srv *server.Server, a account, v *violationLog) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	seed, err := nats.NkeyOptionFromSeed(a.seedFile())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), seed, nats.CustomInboxPrefix(a.inboxPrefix()),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				v.add(a.user, err)
				t.Logf("%s: %v", a.user, err)
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", a.user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// startWorker starts the worker as cmd/worker does: provision or verify, bind
// the consumer, open the ledger, run.
func startWorker(t *testing.T, ctx context.Context, js jetstream.JetStream, apinizerURL string, topo streams.Config, provision bool) {
	t.Helper()
	if provision {
		if err := streams.Provision(ctx, js, topo); err != nil {
			t.Fatalf("worker provisions: %v", err)
		}
	} else if err := streams.Verify(ctx, js); err != nil {
		t.Fatalf("worker verifies the topology: %v", err)
	}
	cons, err := js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatalf("worker binds the consumer: %v", err)
	}
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatalf("worker opens the ledger: %v", err)
	}
	led, err := ledger.New(kv, ledger.Config{Owner: "permissions-test", Lease: topo.AckWait})
	if err != nil {
		t.Fatal(err)
	}
	exec, err := executor.New(executor.Config{
		BaseURL: apinizerURL,
		Token:   func() (string, error) { return simToken, nil },
		Retry:   executor.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: 200 * time.Millisecond, Multiplier: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{
		FetchWait:        200 * time.Millisecond,
		BreakerThreshold: 1,
		ProbeInterval:    50 * time.Millisecond,
		BacklogInterval:  100 * time.Millisecond,
		RedeliveryDelay:  func(uint64) time.Duration { return 100 * time.Millisecond },
		Ledger:           led,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:          metrics.New(prometheus.NewRegistry()),
	}, js, cons, exec)
	if err != nil {
		t.Fatal(err)
	}
	workertest.Run(t, w)
}

func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, key string) *jetstream.PubAck {
	t.Helper()
	ack, err := jobs.Publish(ctx, js, &jobs.KeyDelete{JobID: key, ProjectName: project, KeyName: key})
	if err != nil {
		t.Fatalf("producer publishes job %s: %v", key, err)
	}
	return ack
}

// watchResults opens an ordered consumer on the results (those on filter,
// if one is given) and iterates over it. Messages, not Next: an ordered
// consumer's Next replaces the consumer at each call and deletes the old
// one, which no producer may do.
func watchResults(t *testing.T, ctx context.Context, js jetstream.JetStream, filter string) jetstream.MessagesContext {
	t.Helper()
	var cfg jetstream.OrderedConsumerConfig
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	cons, err := js.OrderedConsumer(ctx, streams.Results, cfg)
	if err != nil {
		t.Fatalf("watch results: %v", err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatalf("watch results: %v", err)
	}
	t.Cleanup(it.Stop)
	return it
}

func expectResult(t *testing.T, ctx context.Context, results jetstream.MessagesContext, jobID string, want jobs.Status) jobs.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		msg, err := results.Next(jetstream.NextContext(ctx))
		if err != nil {
			t.Fatalf("result of %s: %v", jobID, err)
		}
		var r jobs.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			t.Fatal(err)
		}
		if r.JobID != jobID {
			continue
		}
		if r.Status != want {
			t.Fatalf("job %s: %s (%+v), want %s", jobID, r.Status, r.Error, want)
		}
		return r
	}
}

func operatorConsumer(ctx context.Context, js jetstream.JetStream) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}
