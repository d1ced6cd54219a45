package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

const (
	project = "Bench"
	token   = "bench-token"
)

// stack is one scenario's fresh world: a JetStream server with its own store
// directory and the topology provisioned, and optionally the simulator
// seeded with one key per job.
type stack struct {
	srv *server.Server
	// pub publishes jobs; res watches results on a connection of its own so
	// that result arrival times are not queued behind publishes.
	pub, res     *nats.Conn
	js, resJS    jetstream.JetStream
	sim          *apinizertest.Server
	dir          string
	pubTimes     []time.Time
	publishMutex sync.Mutex
	// job is job i of a scenario: keyDelete unless the scenario says.
	job func(prefix string, i int) jobs.Job
}

// newStack starts a server under tmp and, when keys > 0, a simulator with
// the given latency seeded with keys key-000000... in project Bench.
func newStack(tmp string, keys int, latency time.Duration) (*stack, error) {
	dir, err := os.MkdirTemp(tmp, "nats-")
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true,
		// Results carry the whole backlog on one ordered consumer; keep the
		// server's per-connection limits out of the way.
		MaxPending: 256 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats-server: not ready within 10s")
	}
	s := &stack{srv: srv, dir: dir, job: func(prefix string, i int) jobs.Job { return keyDelete(prefix, i) }}
	if s.pub, err = nats.Connect(srv.ClientURL(), nats.Name("bench-publisher")); err != nil {
		s.close()
		return nil, err
	}
	if s.res, err = nats.Connect(srv.ClientURL(), nats.Name("bench-results")); err != nil {
		s.close()
		return nil, err
	}
	if s.js, err = jetstream.New(s.pub, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		s.close()
		return nil, err
	}
	if s.resJS, err = jetstream.New(s.res); err != nil {
		s.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The worker provisions the same topology (its defaults) on start; the
	// jobs must be on the stream before it starts.
	if err := streams.Provision(ctx, s.js, streams.Config{}.WithDefaults()); err != nil {
		s.close()
		return nil, err
	}
	if keys > 0 {
		// LogLimit keeps the simulator's request log (bench process
		// memory) small; nothing reads it.
		s.sim = apinizertest.NewServer(apinizertest.Config{Token: token, Latency: latency, LogLimit: 100})
		s.sim.AddProject(project, "production", "staging")
		for i := range keys {
			s.sim.AddKey(project, keyName(i))
		}
	}
	return s, nil
}

func (s *stack) url() string { return s.srv.ClientURL() }

func (s *stack) close() {
	if s.sim != nil {
		s.sim.Close()
	}
	if s.pub != nil {
		s.pub.Close()
	}
	if s.res != nil {
		s.res.Close()
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	_ = os.RemoveAll(s.dir)
}

func keyName(i int) string { return fmt.Sprintf("key-%06d", i) }

func jobID(prefix string, i int) string { return prefix + "-" + strconv.Itoa(i) }

// keyDelete is job i of a scenario: one distinct key each, so that no two
// jobs wait on the same resource lock.
func keyDelete(prefix string, i int) *jobs.KeyDelete {
	return &jobs.KeyDelete{JobID: jobID(prefix, i), ProjectName: project, KeyName: keyName(i)}
}

// publishAll publishes jobs [0, n) asynchronously, recording each publish
// time, and waits for every acknowledgement.
func (s *stack) publishAll(ctx context.Context, prefix string, n int) error {
	s.pubTimes = make([]time.Time, n)
	for i := range n {
		if err := s.publishOne(prefix, i); err != nil {
			return err
		}
	}
	return s.waitAcks(ctx)
}

// publishPaced offers jobs [0, n) at rate per second, on a schedule fixed
// at the start (a late publish does not push the later ones back), and
// returns the rate actually achieved.
func (s *stack) publishPaced(ctx context.Context, prefix string, n int, rate float64) (float64, error) {
	s.pubTimes = make([]time.Time, n)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if err := s.publishOne(prefix, i); err != nil {
			return 0, err
		}
	}
	achieved := float64(n) / time.Since(start).Seconds()
	return achieved, s.waitAcks(ctx)
}

func (s *stack) publishOne(prefix string, i int) error {
	msg, err := jobs.NewMsg(s.job(prefix, i))
	if err != nil {
		return err
	}
	s.publishMutex.Lock()
	s.pubTimes[i] = time.Now()
	s.publishMutex.Unlock()
	if _, err := s.js.PublishMsgAsync(msg); err != nil {
		return fmt.Errorf("publish job %d: %w", i, err)
	}
	return nil
}

func (s *stack) publishTime(i int) time.Time {
	s.publishMutex.Lock()
	defer s.publishMutex.Unlock()
	return s.pubTimes[i]
}

func (s *stack) waitAcks(ctx context.Context) error {
	select {
	case <-s.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("waiting for publish acks: %w", ctx.Err())
	}
	if n := s.js.PublishAsyncPending(); n > 0 {
		return fmt.Errorf("%d publishes unacknowledged", n)
	}
	return nil
}

// watcher records the arrival time of each job's result on an ordered
// consumer of the results stream. Jobs are told apart by the result's
// Nats-Msg-Id, "result:<prefix>-<i>".
type watcher struct {
	cc     jetstream.ConsumeContext
	prefix string

	mu      sync.Mutex
	arrived []time.Time
	got     int
	failed  int
	other   int
	last    time.Time
	onFirst func()
	// half closes when half the results have arrived: the middle of a
	// burn-down, where the heap profile is taken.
	half chan struct{}
	done chan struct{}
}

func (s *stack) watch(ctx context.Context, prefix string, n int, onFirst func()) (*watcher, error) {
	w := &watcher{prefix: prefix + "-", arrived: make([]time.Time, n), onFirst: onFirst, half: make(chan struct{}), done: make(chan struct{})}
	cons, err := s.resJS.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	succeeded := []byte(`"status":"succeeded"`)
	w.cc, err = cons.Consume(func(msg jetstream.Msg) {
		now := time.Now()
		id, _ := strings.CutPrefix(msg.Headers().Get(nats.MsgIdHdr), "result:")
		rest, ok := strings.CutPrefix(id, w.prefix)
		i, err := strconv.Atoi(rest)
		w.mu.Lock()
		defer w.mu.Unlock()
		if !ok || err != nil || i < 0 || i >= n || !w.arrived[i].IsZero() {
			w.other++
			return
		}
		if w.got == 0 && w.onFirst != nil {
			w.onFirst()
		}
		w.arrived[i] = now
		w.got++
		w.last = now
		if w.got == (n+1)/2 {
			close(w.half)
		}
		if !bytes.Contains(msg.Data(), succeeded) {
			w.failed++
		}
		if w.got == n {
			close(w.done)
		}
	}, jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, err
	}
	return w, nil
}

// wait waits for every result, for at most timeout.
func (w *watcher) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
		return nil
	case <-t.C:
		w.mu.Lock()
		defer w.mu.Unlock()
		return fmt.Errorf("%d of %d results within %s", w.got, len(w.arrived), timeout)
	}
}

func (w *watcher) stop() { w.cc.Stop() }

// latencies returns publish-to-result times in milliseconds, sorted.
func (w *watcher) latencies(s *stack) []float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]float64, 0, w.got)
	for i, a := range w.arrived {
		if !a.IsZero() {
			out = append(out, float64(a.Sub(s.publishTime(i)))/float64(time.Millisecond))
		}
	}
	slices.Sort(out)
	return out
}

// steadyRate is the result rate between the 10th and the 90th percentile of
// arrival times: the throughput without the ramp-up and the tail.
func (w *watcher) steadyRate() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var at []time.Time
	for _, a := range w.arrived {
		if !a.IsZero() {
			at = append(at, a)
		}
	}
	slices.SortFunc(at, time.Time.Compare)
	lo, hi := len(at)/10, len(at)*9/10
	if hi <= lo || !at[hi].After(at[lo]) {
		return 0
	}
	return float64(hi-lo) / at[hi].Sub(at[lo]).Seconds()
}

// quantile of sorted values, nearest rank.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ndjson writes n key-delete jobs as NDJSON to dir/jobs.ndjson.
func ndjson(dir, prefix string, n int) (string, error) {
	var b bytes.Buffer
	for i := range n {
		body, err := jobs.Marshal(keyDelete(prefix, i))
		if err != nil {
			return "", err
		}
		b.Write(body)
		b.WriteByte('\n')
	}
	path := filepath.Join(dir, prefix+".ndjson")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

// ledgerLastSeq reads the last sequence of the ledger bucket's stream.
func (s *stack) ledgerLastSeq(ctx context.Context) (uint64, error) {
	str, err := s.js.Stream(ctx, "KV_"+streams.LedgerBucket)
	if err != nil {
		return 0, fmt.Errorf("ledger bucket: %w", err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("ledger bucket: %w", err)
	}
	return info.State.LastSeq, nil
}
