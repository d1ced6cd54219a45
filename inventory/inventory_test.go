package inventory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/inventory"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded server and the HTTP clients keep pools of their own.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const token = "inventory-test-token"

// bundle is one test's NATS server, simulator and Apinizer client.
type bundle struct {
	ns     *server.Server
	js     jetstream.JetStream
	sim    *apinizertest.Server
	client *executor.Client
	now    time.Time // whole seconds, as certificates carry them
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	if err := streams.ProvisionInventory(context.Background(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	sim := apinizertest.NewServer(apinizertest.Config{Token: token})
	t.Cleanup(sim.Close)
	client, err := executor.New(executor.Config{
		BaseURL:        sim.URL,
		Token:          func() (string, error) { return token, nil },
		AttemptTimeout: 5 * time.Second,
		Retry:          executor.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxElapsedTime: 5 * time.Second, Multiplier: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &bundle{ns: ns, js: js, sim: sim, client: client, now: time.Now().UTC().Truncate(time.Second)}
}

// deploy makes environment of project serve a new certificate valid from
// notBefore to notAfter, and returns its thumbprint.
func (b *bundle) deploy(t *testing.T, project, name, environment string, notBefore, notAfter time.Time) string {
	t.Helper()
	pemText, err := selfsigned.PEMValid(name+"."+environment+".example", notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	b.sim.DeployCertificate(project, name, environment, pemText)
	thumb, err := jobs.Thumbprint(pemText)
	if err != nil {
		t.Fatal(err)
	}
	return thumb
}

// replica is one running inventory with its own NATS connection and
// registry.
type replica struct {
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	close  func() // closes its NATS connection, as a replica that died would
}

// start runs an inventory until the test ends.
func (b *bundle) start(t *testing.T, cfg inventory.Config) *replica {
	t.Helper()
	nc, js := natstest.Connect(t, b.ns)
	reg := prometheus.NewRegistry()
	inv, err := inventory.New(cfg, b.client, js, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{reg: reg, cancel: cancel, done: make(chan error, 1), close: nc.Close}
	go func() { r.done <- inv.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the replica's context and waits for Run to return.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
		r.done <- nil // a second stop returns at once
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context's end")
	}
}

// series gathers the registry as "name{label="value",…}" → value.
func (r *replica) series(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// value is one series' value, and whether it exists.
func (r *replica) value(t *testing.T, name string) (float64, bool) {
	t.Helper()
	v, ok := r.series(t)[name]
	return v, ok
}

// certificateSeries lists the names of the series of one certificate metric.
func (r *replica) certificateSeries(t *testing.T, metric string) []string {
	t.Helper()
	var out []string
	for name := range r.series(t) {
		if strings.HasPrefix(name, metric+"{") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func notAfter(project, certificate, environment string) string {
	return fmt.Sprintf(`apiops_certificate_not_after_timestamp_seconds{certificate=%q,environment=%q,project=%q}`, certificate, environment, project)
}

func notBefore(project, certificate, environment string) string {
	return fmt.Sprintf(`apiops_certificate_not_before_timestamp_seconds{certificate=%q,environment=%q,project=%q}`, certificate, environment, project)
}

const lastSuccess = "apiops_inventory_last_success_timestamp_seconds{}"

// rounds counts the simulator's certificate list calls: one per project per
// round.
func (b *bundle) rounds(project string) int {
	n := 0
	for _, r := range b.sim.Requests() {
		if r.Path == "/apiops/projects/"+project+"/certificates/" && r.Status == 200 {
			n++
		}
	}
	return n
}

// events reads every message of the events stream.
func (b *bundle) events(t *testing.T) []inventory.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []inventory.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != streams.SubjectCertificateExpiring {
			t.Errorf("event on %s, want %s", m.Subject, streams.SubjectCertificateExpiring)
		}
		var e inventory.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("event %s: %v", m.Data, err)
		}
		out = append(out, e)
	}
	return out
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
