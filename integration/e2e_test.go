package integration

// Helpers of the end-to-end suites (jobkinds_test.go, cluster_test.go, partition_test.go,
// rolling_test.go): the worker and enqueue containers, a seeded simulator, and the test
// process's own view of the results stream, the ledger and the simulator's request log.
//
// The suites assert on what the system did (results on APIOPS_RESULTS, the requests the
// simulator answered, its final state), never on log text.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

const (
	// simToken is the bearer token the simulator demands and the workers send.
	simToken = "integration-token"
	// workerPort serves the worker's /metrics, /healthz and /readyz.
	workerPort = "9090/tcp"
	// suiteAckWait is the consumer ack wait and ledger lease of the suites: short, so a
	// job held by a dead or cut-off worker is taken over within seconds.
	suiteAckWait = 5 * time.Second
	// workerStopGrace is how long a worker gets between SIGTERM and SIGKILL in the rolling
	// restart: above its shutdown grace plus its pull wait and NATS drain, so that a
	// SIGKILL means the worker failed to stop, not that it was not given time.
	workerStopGrace = 30 * time.Second
)

// seedProject is one project of an apinizer-sim seed file (the shape of /_sim/state).
type seedProject struct {
	Name         string            `json:"name"`
	Environments []string          `json:"environments"`
	Certificates []seedCertificate `json:"certificates"`
	Keys         []string          `json:"keys"`
	Credentials  []seedCredential  `json:"credentials"`
}

type seedCertificate struct {
	Name string `json:"name"`
	PEM  string `json:"pem"`
}

type seedCredential struct {
	Username     string `json:"username"`
	HasPublicKey bool   `json:"hasPublicKey"`
}

// startSeededSim starts the simulator with alias apinizer-sim on nw, demanding simToken,
// holding the projects of seed, with extra apinizer-sim flags (--latency). The seed file
// is copied into the container, which therefore keeps a writable root filesystem: Docker
// refuses to copy into a read-only one.
func startSeededSim(t testing.TB, nw *testcontainers.DockerNetwork, seed []seedProject, args ...string) *simulator {
	t.Helper()
	const alias = "apinizer-sim"
	body, err := json.Marshal(map[string]any{"projects": seed})
	if err != nil {
		t.Fatalf("encode seed: %v", err)
	}
	c := startContainer(t, testcontainers.ContainerRequest{
		Image:          imageRef(t, "apinizer-sim"),
		Cmd:            append([]string{"--token", simToken, "--seed", "/seed/seed.json"}, args...),
		ExposedPorts:   []string{simPort},
		Networks:       []string{nw.Name},
		NetworkAliases: map[string][]string{nw.Name: {alias}},
		Files: []testcontainers.ContainerFile{{
			Reader: strings.NewReader(string(body)), ContainerFilePath: "/seed/seed.json", FileMode: 0o644,
		}},
		WaitingFor: wait.ForHTTP("/healthz").WithPort(simPort).WithStartupTimeout(startTimeout),
	})
	return &simulator{Container: c, NetworkURL: "http://" + alias + ":8080"}
}

// workerSpec configures one worker container.
type workerSpec struct {
	// Name is the container's host name and network alias. The worker's ledger owner
	// begins with its host name, which is how a test finds the jobs a worker holds.
	Name        string
	NATSURL     string
	Replicas    int
	Concurrency int
	// Env holds further settings, added to (or overriding) the suites' own: the
	// certificate inventory's, for instance.
	Env map[string]string
}

// startWorker starts a worker container against sim and waits until /readyz answers 200:
// connected to NATS, streams provisioned, consumer bound.
func startWorker(t testing.TB, nw *testcontainers.DockerNetwork, sim *simulator, spec workerSpec) testcontainers.Container {
	t.Helper()
	name := spec.Name
	env := map[string]string{
		"NATS_URL":                     spec.NATSURL,
		"APINIZER_URL":                 sim.NetworkURL,
		"APINIZER_TOKEN":               simToken,
		"APINIZER_ALLOW_INSECURE_HTTP": "true",
		"METRICS_ADDR":                 ":9090",
		"WORKER_STREAM_REPLICAS":       strconv.Itoa(max(1, spec.Replicas)),
		"WORKER_CONCURRENCY":           strconv.Itoa(max(1, spec.Concurrency)),
		"WORKER_ACK_WAIT":              suiteAckWait.String(),
		"WORKER_LEASE":                 suiteAckWait.String(),
		"WORKER_MAX_DELIVER":           "20",
		"WORKER_ATTEMPT_TIMEOUT":       "5s",
		"WORKER_SHUTDOWN_GRACE":        "10s",
		"LOG_LEVEL":                    "info",
	}
	maps.Copy(env, spec.Env)
	return startContainer(t, testcontainers.ContainerRequest{
		Image:          imageRef(t, "worker"),
		Env:            env,
		ExposedPorts:   []string{workerPort},
		Networks:       []string{nw.Name},
		NetworkAliases: map[string][]string{nw.Name: {name}},
		ConfigModifier: func(c *container.Config) { c.Hostname = name },
		HostConfigModifier: func(hc *container.HostConfig) {
			readOnlyRootfs(hc)
		},
		WaitingFor: wait.ForHTTP("/readyz").WithPort(workerPort).WithStartupTimeout(startTimeout),
	})
}

// stopWorker sends SIGTERM to a worker and waits for it to exit (SIGKILL after
// workerStopGrace), returning its exit code and how long it took.
func stopWorker(t testing.TB, c testcontainers.Container) (int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), workerStopGrace+opTimeout)
	defer cancel()
	grace := workerStopGrace
	start := time.Now()
	if err := c.Stop(ctx, &grace); err != nil {
		t.Fatalf("stop worker %s: %v", shortID(c), err)
	}
	took := time.Since(start)
	state, err := c.State(ctx)
	if err != nil {
		t.Fatalf("state of stopped worker %s: %v", shortID(c), err)
	}
	return state.ExitCode, took
}

// runEnqueue runs the enqueue CLI once with args against the network's NATS, files
// copied in first (path in the container → contents), and returns its exit code and
// its output (stdout and stderr together, as Docker keeps them).
func runEnqueue(t testing.TB, nw *testcontainers.DockerNetwork, files map[string]string, args ...string) (int, string) {
	t.Helper()
	req := testcontainers.ContainerRequest{
		Image:      imageRef(t, "enqueue"),
		Cmd:        args,
		Networks:   []string{nw.Name},
		WaitingFor: wait.ForExit().WithExitTimeout(startTimeout),
	}
	for path, body := range files {
		req.Files = append(req.Files, testcontainers.ContainerFile{Reader: strings.NewReader(body), ContainerFilePath: path, FileMode: 0o644})
	}
	c := startContainer(t, req)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	state, err := c.State(ctx)
	if err != nil {
		t.Fatalf("state of enqueue container: %v", err)
	}
	rc, err := c.Logs(ctx)
	if err != nil {
		t.Fatalf("output of enqueue container: %v", err)
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read output of enqueue container: %v", err)
	}
	return state.ExitCode, string(out)
}

// resultWatch is the test's own reading of APIOPS_RESULTS through an ordered consumer:
// every message, in stream order, each stream sequence counted once even if the consumer
// is recreated after a server restart.
type resultWatch struct {
	mu       sync.Mutex
	seqs     map[uint64]bool
	perJob   map[string]int
	first    map[string]jobs.Result
	subject  map[string]string
	arrivals []time.Time
	bad      []string // messages that are not results
}

// watchResults starts reading the results stream from its beginning.
func watchResults(t testing.TB, js jetstream.JetStream) *resultWatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", streams.Results, err)
	}
	w := &resultWatch{seqs: map[uint64]bool{}, perJob: map[string]int{}, first: map[string]jobs.Result{}, subject: map[string]string{}}
	cc, err := cons.Consume(w.add)
	if err != nil {
		t.Fatalf("consume %s: %v", streams.Results, err)
	}
	t.Cleanup(cc.Stop)
	return w
}

func (w *resultWatch) add(m jetstream.Msg) {
	meta, err := m.Metadata()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		if w.seqs[meta.Sequence.Stream] {
			return
		}
		w.seqs[meta.Sequence.Stream] = true
	}
	var r jobs.Result
	if err := json.Unmarshal(m.Data(), &r); err != nil || r.JobID == "" {
		w.bad = append(w.bad, fmt.Sprintf("%s: %q", m.Subject(), m.Data()))
		return
	}
	if m.Headers().Get(nats.MsgIdHdr) != jobs.ResultMsgID(r.JobID) {
		w.bad = append(w.bad, fmt.Sprintf("%s: Nats-Msg-Id %q for job %q", m.Subject(), m.Headers().Get(nats.MsgIdHdr), r.JobID))
	}
	w.perJob[r.JobID]++
	if w.perJob[r.JobID] == 1 {
		w.first[r.JobID] = r
		w.subject[r.JobID] = m.Subject()
		w.arrivals = append(w.arrivals, time.Now())
	}
}

// Jobs is the number of distinct jobs with a result.
func (w *resultWatch) Jobs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.perJob)
}

// resultSummary is a snapshot of a resultWatch.
type resultSummary struct {
	Messages   int                    // result messages in the stream
	Results    map[string]jobs.Result // first result of each job
	Subjects   map[string]string      // its subject
	Duplicates map[string]int         // job id → extra messages beyond the first
	Arrivals   []time.Time            // when each job's first result was read
	Bad        []string
}

func (w *resultWatch) Summary() resultSummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := resultSummary{
		Results:    make(map[string]jobs.Result, len(w.first)),
		Subjects:   make(map[string]string, len(w.subject)),
		Duplicates: map[string]int{},
		Arrivals:   append([]time.Time(nil), w.arrivals...),
		Bad:        append([]string(nil), w.bad...),
	}
	for id, n := range w.perJob {
		s.Messages += n
		if n > 1 {
			s.Duplicates[id] = n - 1
		}
	}
	for id, r := range w.first {
		s.Results[id] = r
	}
	for id, subj := range w.subject {
		s.Subjects[id] = subj
	}
	return s
}

// maxGapAfter is the longest wait between consecutive new results after from: how long
// the system stalled at worst following a fault at from.
func maxGapAfter(arrivals []time.Time, from time.Time) time.Duration {
	var gap time.Duration
	prev := from
	for _, a := range arrivals {
		if a.Before(from) {
			continue
		}
		gap = max(gap, a.Sub(prev))
		prev = a
	}
	return gap
}

// simCall is the part of a /_sim/requests entry the suites check.
type simCall struct {
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Query    map[string][]string `json:"query"`
	Form     map[string]string   `json:"form"`
	Files    map[string]string   `json:"files"`
	Status   int                 `json:"status"`
	Start    time.Time           `json:"start"`
	End      time.Time           `json:"end"`
	Resource string              `json:"resource"`
}

// simSnapshot is /_sim/state.
type simSnapshot struct {
	Projects []struct {
		Name         string `json:"name"`
		Certificates []struct {
			Name     string `json:"name"`
			Alias    string `json:"alias"`
			PEM      string `json:"pem"`
			Revision int    `json:"revision"`
		} `json:"certificates"`
		Keys        []string         `json:"keys"`
		Credentials []seedCredential `json:"credentials"`
	} `json:"projects"`
	Applied     map[string]int `json:"applied"`
	MaxInFlight map[string]int `json:"maxInFlight"`
}

// simRequests reads the simulator's request log.
func simRequests(t testing.TB, sim *simulator) []simCall {
	t.Helper()
	var calls []simCall
	getJSON(t, sim.HostURL(t)+"/_sim/requests", &calls)
	return calls
}

// simState reads the simulator's state and counters.
func simState(t testing.TB, sim *simulator) simSnapshot {
	t.Helper()
	var st simSnapshot
	getJSON(t, sim.HostURL(t)+"/_sim/state", &st)
	return st
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d (%v): %s", url, resp.StatusCode, err, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", url, err)
	}
}

// okPerResource counts, per resource key, the simulator's requests answered 200.
func okPerResource(calls []simCall) map[string]int {
	n := map[string]int{}
	for _, c := range calls {
		if c.Resource != "" && c.Status == http.StatusOK {
			n[c.Resource]++
		}
	}
	return n
}

// ledgerJobs reads every job record of the ledger bucket.
func ledgerJobs(t testing.TB, js jetstream.JetStream) []ledger.JobRecord {
	t.Helper()
	jobs, _ := ledgerRecords(t, js)
	return jobs
}

// ledgerRecords reads every job and resource record of the ledger bucket.
func ledgerRecords(t testing.TB, js jetstream.JetStream) ([]ledger.JobRecord, []ledger.ResourceRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatalf("ledger bucket: %v", err)
	}
	watcher, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	defer watcher.Stop()
	var (
		jobs []ledger.JobRecord
		res  []ledger.ResourceRecord
	)
	for entry := range watcher.Updates() {
		if entry == nil {
			return jobs, res // every current value has been delivered
		}
		switch key := entry.Key(); {
		case strings.HasPrefix(key, "job."):
			var rec ledger.JobRecord
			if json.Unmarshal(entry.Value(), &rec) == nil {
				jobs = append(jobs, rec)
			}
		case strings.HasPrefix(key, "res."):
			var rec ledger.ResourceRecord
			if json.Unmarshal(entry.Value(), &rec) == nil {
				res = append(res, rec)
			}
		}
	}
	t.Fatalf("read ledger: %v", ctx.Err())
	return nil, nil
}

// runningClaims returns the ids of the jobs not final whose claim, in their resource's
// record, is by a worker whose owner name begins with host (the worker's host name).
func runningClaims(t testing.TB, js jetstream.JetStream, host string) []string {
	t.Helper()
	jobs, res := ledgerRecords(t, js)
	final := map[string]bool{}
	for _, rec := range jobs {
		final[rec.JobID] = rec.State == ledger.StateFinal
	}
	var ids []string
	for _, rec := range res {
		if rec.Holder != "" && !final[rec.Holder] && strings.HasPrefix(rec.Owner, host+"-") {
			ids = append(ids, rec.Holder)
		}
	}
	sort.Strings(ids)
	return ids
}

// ownedBy reports whether rec was last claimed by the worker with host name host: the
// worker's ledger owner is "<host name>-<pid>-<nonce>".
func ownedBy(rec ledger.JobRecord, host string) bool {
	return strings.HasPrefix(rec.Owner, host+"-")
}

// waitFor polls cond every 100ms until it holds or timeout passes, then fails the test
// with what it was waiting for and, from status, where things stood.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool, status func() string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("after %s still waiting for %s: %s", timeout, what, status())
		case <-tick.C:
		}
	}
	return time.Since(start)
}

// measure reports a suite's figures: in the test log, and as a line of its own on
// standard output beginning with "--- MEASURE", which CI collects from the test output.
func measure(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Logf("MEASURE %s", line)
	fmt.Fprintf(os.Stdout, "--- MEASURE: %s %s\n", t.Name(), line)
}

// publishJobs publishes every job from the test process, asynchronously, with
// Nats-Msg-Id set to the job id (jobs.NewMsg), and waits for every acknowledgement.
func publishJobs(t testing.TB, js jetstream.JetStream, list []jobs.Job) {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, 0, len(list))
	for _, job := range list {
		msg, err := jobs.NewMsg(job)
		if err != nil {
			t.Fatalf("job %s: %v", job.ID(), err)
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			t.Fatalf("publish job %s: %v", job.ID(), err)
		}
		futures = append(futures, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Stream != streams.Jobs || ack.Duplicate {
				t.Fatalf("job %s: ack %+v, want a new message in %s", list[i].ID(), ack, streams.Jobs)
			}
		case err := <-f.Err():
			t.Fatalf("publish job %s: %v", list[i].ID(), err)
		case <-ctx.Done():
			t.Fatalf("publish job %s: no acknowledgement: %v", list[i].ID(), ctx.Err())
		}
	}
}
