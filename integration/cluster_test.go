package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// clusterName is the CLUSTER_NAME the suites give deploy/nats/nats-server.conf.
const clusterName = "apiops"

// testJetStreamKey is the JETSTREAM_KEY the suites give deploy/nats/nats-server.conf: its
// stores are encrypted at rest, as in production.
const testJetStreamKey = "integration-jetstream-key-not-a-secret-0123456789"

// startCluster starts the three-node JetStream cluster exactly as shipped: each node runs
// deploy/nats/nats-server.conf, copied into the container, with SERVER_NAME and
// CLUSTER_NAME from the environment and the aliases nats-1, nats-2 and nats-3 its routes
// name. It returns once the cluster can place a three-replica stream, which needs a
// JetStream meta leader and all three peers: the worker provisions its streams once at
// start-up and exits if that fails.
//
// The nodes keep a writable root filesystem: Docker refuses to copy the configuration
// file into a read-only one. JetStream still writes only to the /data volume.
func startCluster(t testing.TB, nw *testcontainers.DockerNetwork) []*natsNode {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(env.root, "deploy/nats/nats-server.conf"))
	if err != nil {
		t.Fatalf("read the shipped NATS configuration: %v", err)
	}
	nodes := make([]*natsNode, 3)
	for i := range nodes {
		name := fmt.Sprintf("nats-%d", i+1)
		c := startContainer(t, testcontainers.ContainerRequest{
			Image:          imageRef(t, "nats-server"),
			Cmd:            []string{"-c", "/etc/nats/nats-server.conf"},
			Env:            map[string]string{"SERVER_NAME": name, "CLUSTER_NAME": clusterName, "JETSTREAM_KEY": testJetStreamKey},
			ExposedPorts:   []string{natsClientPort, natsMonitorPort},
			Networks:       []string{nw.Name},
			NetworkAliases: map[string][]string{nw.Name: {name}},
			Files: []testcontainers.ContainerFile{{
				Reader: strings.NewReader(string(conf)), ContainerFilePath: "/etc/nats/nats-server.conf", FileMode: 0o644,
			}},
			// A clustered node serves clients before the cluster has a meta leader,
			// which needs the other nodes: js-server-only checks this node alone.
			WaitingFor: wait.ForHTTP("/healthz?js-server-only=true").WithPort(natsMonitorPort).WithStartupTimeout(startTimeout),
		})
		nodes[i] = &natsNode{Container: c, Name: name, NetworkURL: "nats://" + name + ":4222"}
	}

	// A three-replica stream can be created once the meta group has a leader and knows
	// all three peers; until then the request times out or is refused.
	js := jetStream(t, nodes[0].HostURL(t))
	var lastErr error
	waitFor(t, 60*time.Second, "the cluster to place a three-replica stream", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, lastErr = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "CLUSTER_CHECK", Subjects: []string{"cluster.check"}, Replicas: 3, Storage: jetstream.FileStorage,
		})
		return lastErr == nil
	}, func() string { return fmt.Sprint(lastErr) })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := js.DeleteStream(ctx, "CLUSTER_CHECK"); err != nil {
		t.Fatalf("delete the check stream: %v", err)
	}
	return nodes
}

// clusterURL is the workers' NATS_URL: all three nodes.
func clusterURL(nodes []*natsNode) string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.NetworkURL
	}
	return strings.Join(urls, ",")
}

// connectCluster connects the test process to the given nodes through their published
// ports. The URLs the servers advertise are the network's (nats-2:4222), useless from
// here, so they are ignored.
func connectCluster(t testing.TB, nodes ...*natsNode) jetstream.JetStream {
	t.Helper()
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.HostURL(t)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(t.Name()), nats.Timeout(5*time.Second),
		nats.IgnoreDiscoveredServers(), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// workload is the jobs of a chaos suite: one job per resource, each resource seeded, so
// that every job must succeed and the simulator's log tells each job's requests apart.
type workload struct {
	project string
	seed    seedProject
	jobs    []jobs.Job
	// resource maps a job id to the simulator's resource key, "kind/project/name".
	resource map[string]string
	// update marks the certificate update jobs, the ones a repeat would apply twice.
	update map[string]bool
}

// newWorkload makes n jobs in project: two fifths key deletes, two fifths credential
// deletes, one fifth certificate updates.
func newWorkload(t testing.TB, prefix, project string, n int) *workload {
	t.Helper()
	w := &workload{
		project:  project,
		seed:     seedProject{Name: project, Environments: []string{"production", "staging"}},
		resource: map[string]string{},
		update:   map[string]bool{},
	}
	seedPEM, newPEM := mustPEM(t, "seed."+prefix), mustPEM(t, "new."+prefix)
	for i := range n {
		var job jobs.Job
		switch i % 5 {
		case 0, 1:
			name := fmt.Sprintf("key-%04d", i)
			w.seed.Keys = append(w.seed.Keys, name)
			job = &jobs.KeyDelete{JobID: fmt.Sprintf("%s-key-%04d", prefix, i), ProjectName: project, KeyName: name, JWKDeleteAction: jobs.JWKDeleteAction("DELETE")}
			w.resource[job.ID()] = "key/" + project + "/" + name
		case 2, 3:
			name := fmt.Sprintf("user-%04d", i)
			w.seed.Credentials = append(w.seed.Credentials, seedCredential{Username: name, HasPublicKey: true})
			job = &jobs.CredentialDelete{JobID: fmt.Sprintf("%s-credential-%04d", prefix, i), ProjectName: project, Username: name}
			w.resource[job.ID()] = "credential/" + project + "/" + name
		default:
			name := fmt.Sprintf("cert-%04d", i)
			w.seed.Certificates = append(w.seed.Certificates, seedCertificate{Name: name, PEM: seedPEM})
			job = &jobs.CertificateUpdate{JobID: fmt.Sprintf("%s-certificate-%04d", prefix, i), ProjectName: project, CertificateName: name,
				CertificateFields: jobs.CertificateFields{Alias: name, CertificateDescription: "rotated", EnvironmentList: []string{"production", "staging"}, PEMEncodedFile: newPEM}}
			w.resource[job.ID()] = "certificate/" + project + "/" + name
			w.update[job.ID()] = true
		}
		w.jobs = append(w.jobs, job)
	}
	return w
}

// verdict is what a chaos suite found once every job had its result.
type verdict struct {
	results, duplicates, missing, notSucceeded int
	// repeats are the jobs whose change the simulator answered 200 more than once.
	repeats []string
	// excused are the repeats of jobs a killed or cut-off worker held: Apinizer gives no
	// way to ask whether an interrupted call landed, so the job is tried again.
	excused int
}

// check compares the results stream and the simulator with the workload and fails t for
// every broken promise: each job exactly one result, succeeded; the simulator applied
// each change once, or twice only for a job in interrupted (held by a worker that was
// killed or cut off); every seeded resource changed; never two requests on one resource
// at once.
func (w *workload) check(t testing.TB, sim *simulator, sum resultSummary, interrupted map[string]bool) verdict {
	t.Helper()
	v := verdict{results: sum.Messages}
	for id, n := range sum.Duplicates {
		v.duplicates += n
		t.Errorf("job %s: %d results on the results stream, want exactly 1", id, n+1)
	}
	for _, b := range sum.Bad {
		t.Errorf("malformed message on the results stream: %s", b)
	}
	for _, job := range w.jobs {
		r, ok := sum.Results[job.ID()]
		switch {
		case !ok:
			v.missing++
			t.Errorf("job %s: no result", job.ID())
		case r.Status != jobs.StatusSucceeded:
			v.notSucceeded++
			t.Errorf("job %s: result %s (error %+v), want succeeded", job.ID(), r.Status, r.Error)
		}
	}
	if extra := len(sum.Results) - len(w.jobs) + v.missing; extra > 0 {
		t.Errorf("%d results for jobs that were never published", extra)
	}

	calls := simRequests(t, sim)
	ok := okPerResource(calls)
	for _, job := range w.jobs {
		id, res := job.ID(), w.resource[job.ID()]
		switch n := ok[res]; {
		case n == 1:
		case n == 0:
			t.Errorf("job %s: the simulator never answered 200 for %s", id, res)
		case n == 2 && interrupted[id]:
			v.repeats = append(v.repeats, id)
			v.excused++
		default:
			v.repeats = append(v.repeats, id)
			t.Errorf("job %s: the simulator applied %s %d times (held by an interrupted worker: %t); want once, twice at most after an interruption; its requests: %s",
				id, res, n, interrupted[id], describeCalls(calls, res))
		}
	}

	st := simState(t, sim)
	for res, n := range st.MaxInFlight {
		if n > 1 {
			t.Errorf("resource %s: %d requests in flight at once, want at most 1", res, n)
		}
	}
	left := map[string]int{} // resource key → revision (0 for keys and credentials)
	for _, p := range st.Projects {
		for _, k := range p.Keys {
			left["key/"+p.Name+"/"+k] = 0
		}
		for _, c := range p.Credentials {
			left["credential/"+p.Name+"/"+c.Username] = 0
		}
		for _, c := range p.Certificates {
			left["certificate/"+p.Name+"/"+c.Name] = c.Revision
		}
	}
	for _, job := range w.jobs {
		res := w.resource[job.ID()]
		rev, exists := left[res]
		switch {
		case w.update[job.ID()] && rev < 2:
			t.Errorf("job %s: %s at revision %d, want the update applied", job.ID(), res, rev)
		case !w.update[job.ID()] && exists:
			t.Errorf("job %s: %s still exists, want it deleted", job.ID(), res)
		}
	}
	return v
}

func describeCalls(calls []simCall, resource string) string {
	var b strings.Builder
	for _, c := range calls {
		if c.Resource == resource {
			fmt.Fprintf(&b, "[%s %s → %d at %s] ", c.Method, c.Path, c.Status, c.Start.Format("15:04:05.000"))
		}
	}
	return b.String()
}

// nodeHealthy reports whether a node's /healthz answers 200: with no option it checks
// that every stream and consumer it holds has caught up with its group.
func nodeHealthy(t testing.TB, n *natsNode) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hostURL(t, n.Container, "http", natsMonitorPort)+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestClusterSurvivesNodeRestartAndWorkerCrash runs 500 jobs through two workers on the
// three-node cluster of deploy/nats (streams, consumer and ledger at three replicas). Mid-
// run one NATS node is stopped and started again, then one worker is killed (SIGKILL).
// Every job must end with exactly one result, and the simulator must have applied each
// change once, twice at most for a job the killed worker held.
func TestClusterSurvivesNodeRestartAndWorkerCrash(t *testing.T) {
	start := time.Now()
	const total = 500
	wl := newWorkload(t, "cluster", "ClusterProject", total)

	nw := startNetwork(t)
	nodes := startCluster(t, nw)
	// The latency paces the run so that the faults land mid-run.
	sim := startSeededSim(t, nw, []seedProject{wl.seed}, "--latency", "250ms")
	url := clusterURL(nodes)
	startWorker(t, nw, sim, workerSpec{Name: "worker-a", NATSURL: url, Replicas: 3, Concurrency: 4})
	workerB := startWorker(t, nw, sim, workerSpec{Name: "worker-b", NATSURL: url, Replicas: 3, Concurrency: 4})

	// The test's own connection avoids nats-2, the node it stops.
	js := connectCluster(t, nodes[0], nodes[2])
	checkReplicas(t, js, 3)
	results := watchResults(t, js)
	status := func() string {
		return fmt.Sprintf("%d of %d jobs have a result", results.Jobs(), total)
	}

	runStart := time.Now()
	publishJobs(t, js, wl.jobs)

	// Fault 1: stop nats-2 (SIGTERM, lame duck, SIGKILL after the harness's grace), let
	// the run go on with two nodes, start it again.
	waitFor(t, 2*time.Minute, "75 results before stopping nats-2", func() bool { return results.Jobs() >= 75 }, status)
	stopAt := time.Now()
	stopContainer(t, nodes[1].Container)
	stopTook := time.Since(stopAt)
	atStop := results.Jobs()
	waitFor(t, 2*time.Minute, "progress while nats-2 is down", func() bool { return results.Jobs() >= atStop+100 }, status)
	down := time.Since(stopAt)
	restartAt := time.Now()
	startStopped(t, nodes[1].Container)
	waitFor(t, 2*time.Minute, "nats-2 to catch up (/healthz 200)", func() bool { return nodeHealthy(t, nodes[1]) }, status)
	nodeRecovery := time.Since(restartAt)
	afterNode := results.Jobs()

	// Fault 2: kill worker-b. The jobs it held (running claims in the ledger) are taken
	// over by worker-a after the lease.
	// Killed at 300 results, or 25 after the node came back, but with 100 jobs still to do
	// whatever the node's recovery took.
	waitFor(t, 2*time.Minute, "more results before killing worker-b", func() bool {
		return results.Jobs() >= min(max(300, afterNode+25), total-100)
	}, status)
	killAt := time.Now()
	killContainer(t, workerB)
	atKill := results.Jobs()
	held := runningClaims(t, js, "worker-b")
	if atKill >= total {
		t.Fatalf("every job was done before worker-b was killed: the fault was not mid-run (raise the simulator's latency)")
	}

	waitFor(t, 3*time.Minute, "a result for every job", func() bool { return results.Jobs() >= total }, status)
	runTook := time.Since(runStart)
	sum := results.Summary()
	interrupted := map[string]bool{}
	for _, id := range held {
		interrupted[id] = true
	}
	// A job held by worker-b ends once the lease lapses and worker-a takes it over.
	var takeover time.Duration
	for _, id := range held {
		if r, ok := sum.Results[id]; ok {
			takeover = max(takeover, r.FinishedAt.Sub(killAt))
		}
	}

	v := wl.check(t, sim, sum, interrupted)
	measure(t, "jobs=%d results=%d duplicates=%d missing=%d not_succeeded=%d repeats=%d (excused, held by the killed worker: %d) "+
		"node_stop=%s node_down=%s node_recovery=%s max_stall_after_node_stop=%s "+
		"worker_kill_at=%d/%d held_by_killed_worker=%d takeover=%s max_stall_after_kill=%s run=%s duration=%s",
		total, v.results, v.duplicates, v.missing, v.notSucceeded, len(v.repeats), v.excused,
		stopTook.Round(time.Millisecond), down.Round(time.Millisecond), nodeRecovery.Round(time.Millisecond),
		maxGapAfter(sum.Arrivals, stopAt).Round(time.Millisecond),
		atKill, total, len(held), takeover.Round(time.Millisecond), maxGapAfter(sum.Arrivals, killAt).Round(time.Millisecond),
		runTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// checkReplicas fails t unless the worker provisioned the jobs and results streams and the
// ledger bucket with want replicas.
func checkReplicas(t testing.TB, js jetstream.JetStream, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, name := range []string{"APIOPS_JOBS", "APIOPS_RESULTS", "KV_apiops_ledger"} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if info.Config.Replicas != want || info.Cluster == nil || len(info.Cluster.Replicas)+1 != want {
			t.Errorf("stream %s: %d replicas configured, cluster %+v; want %d", name, info.Config.Replicas, info.Cluster, want)
		}
	}
	c, err := js.Consumer(ctx, "APIOPS_JOBS", "apiops-worker")
	if err != nil {
		t.Fatalf("consumer apiops-worker: %v", err)
	}
	if got := c.CachedInfo().Config.Replicas; got != want && !(got == 0 && want == 1) {
		t.Errorf("consumer apiops-worker: %d replicas, want %d", got, want)
	}
}
