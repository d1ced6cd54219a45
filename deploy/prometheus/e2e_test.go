// Package prometheus_test checks rules.yml and the Grafana dashboard against the real thing: a
// Prometheus server from Debian's prometheus package scraping a real worker that has processed
// succeeded, partial, failed and invalid jobs. It holds tests only.
package prometheus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/inventory"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded server and the HTTP clients keep pools of their own.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const (
	// scrapeJob matches the alerts' job=~"apiops-worker.*".
	scrapeJob = "apiops-worker-e2e"
	token     = "e2e-token"
	// healthy deploys to production and staging; flaky's staging fails.
	healthy = "Healthy"
	flaky   = "Flaky"
)

// alertSeries lists, for every alert in rules.yml, the parts of its expression that must return
// series on a healthy system: the expression with its comparisons taken off. An alert whose
// condition is false returns nothing by design, so evaluating the alert's own expression (done
// too, for errors) cannot tell "false" from "broken" (a misspelt metric, a label no series
// carries). Each entry must be a substring of its alert's expression, whitespace aside, so the
// two cannot drift apart; an alert without an entry fails the test.
var alertSeries = map[string][]string{
	"ApiopsWorkerDown":                    {`up{job=~"apiops-worker.*"}`},
	"ApiopsWorkerInstanceDown":            {`up{job=~"apiops-worker.*"}`},
	"ApiopsEnvironmentDeploymentFailures": {`job_operation_environment:apiops_environment_deployment_failures:ratio_rate5m`},
	"ApiopsJobsFailing":                   {`job_operation:apiops_jobs_failed:ratio_rate5m`},
	"ApiopsDeadLettersGrowing":            {`job_operation_reason:apiops_dead_letters:increase15m`},
	"ApiopsBacklogGrowing": {
		`job:apiops_consumer_pending_messages:max`,
		`max by (job) (deriv(apiops_consumer_pending_messages[15m]))`,
	},
	"ApiopsBacklogNotDraining": {
		`job:apiops_consumer_pending_messages:max`,
		`sum by (job) (rate(apiops_jobs_finished_total[15m]))`,
	},
	"ApiopsCircuitBreakerOpen": {`max_over_time(apiops_circuit_breaker_state[2m])`},
	"ApiopsHandlerPanics":      {`increase(apiops_handler_panics_total[15m])`},
	"ApinizerTokenRejected":    {`sum by (job, reason) (increase(apiops_apinizer_auth_failures_total[10m]))`},
	"ApinizerCertificateExpiringSoon": {
		`job_project_certificate_environment:apiops_certificate_not_after_timestamp_seconds:max - time()`,
	},
	"ApinizerCertificateExpired": {
		`time() - job_project_certificate_environment:apiops_certificate_not_after_timestamp_seconds:max`,
	},
	"ApinizerInventoryStale": {
		`time() - max by (job) (apiops_inventory_last_success_timestamp_seconds)`,
		`time() - min by (job) (process_start_time_seconds and on (job, instance) apiops_inventory_interval_seconds)`,
		`3 * max by (job) (apiops_inventory_interval_seconds)`,
	},
	"ApiopsJetStreamUnavailable": {`max by (job, object) (max_over_time(apiops_jetstream_unavailable[2m]))`},
	"ApiopsJobsStranded":         {`max by (job) (apiops_stranded_jobs)`},
}

// dashboardVars are the values the template variables take in the test: everything the
// worker under test exports.
var dashboardVars = strings.NewReplacer(
	"${job}", scrapeJob, "$job", scrapeJob,
	"${instance}", ".*", "$instance", ".*",
	"${environment}", ".*", "$environment", ".*",
	"$__rate_interval", "1m", "$__interval", "1s", "$__range", "5m",
)

// orZero ends the panel expressions of metrics that have no series until something happens.
const orZero = " or on() vector(0)"

// TestDashboardAndRulesWorkOnARealWorker runs every dashboard panel expression and every rule
// through Prometheus' HTTP API after the worker has processed two waves of jobs: succeeded,
// partial (staging fails), failed (Apinizer refuses), invalid, and one retried after a 503.
// Two waves because a labelled counter is born at its first increment: rate() sees only the
// increments after the first scrape that saw the series, so the second wave is what makes
// every rate non-zero. "No series" fails a panel or a recording rule; for alerts see
// alertSeries.
func TestDashboardAndRulesWorkOnARealWorker(t *testing.T) {
	bin := prometheusBinary(t)
	e := setup(t)
	prom := startPrometheus(t, bin, e.metricsAddr)
	prom.waitFor(t, 30*time.Second, "the first scrape of the worker", func() (bool, error) {
		r, err := prom.query(fmt.Sprintf(`up{job=%q} == 1`, scrapeJob))
		return len(r) > 0, err
	})

	const waves = 2
	for wave := 1; wave <= waves; wave++ {
		finished := e.runWave(t, wave)
		prom.waitFor(t, 20*time.Second, fmt.Sprintf("Prometheus to scrape wave %d's %d results", wave, finished), func() (bool, error) {
			r, err := prom.query(fmt.Sprintf(`sum(apiops_jobs_finished_total{job=%q})`, scrapeJob))
			return len(r) == 1 && r[0].Value == float64(finished), err
		})
	}
	scraped := time.Now()
	prom.waitFor(t, 20*time.Second, "every rule group to evaluate after the last scrape", func() (bool, error) {
		groups, err := prom.rules()
		if err != nil || len(groups) == 0 {
			return false, err
		}
		for _, g := range groups {
			if !g.LastEvaluation.After(scraped) {
				return false, nil
			}
		}
		return true, nil
	})

	t.Run("every dashboard panel expression returns series", func(t *testing.T) {
		for _, pt := range dashboardTargets(t) {
			t.Run(pt.name, func(t *testing.T) {
				expr := dashboardVars.Replace(pt.expr)
				if m := regexp.MustCompile(`\$\{?\w+`).FindString(expr); m != "" {
					t.Fatalf("%s: template variable %s has no test value", expr, m)
				}
				r, err := prom.query(expr)
				if err != nil {
					t.Fatal(err)
				}
				requireSeries(t, expr, r)
				// A panel whose metric may have no series yet falls back to 0; this run
				// retries, dead-letters and refuses jobs, so the metric itself must answer
				// too (a misspelt name would otherwise hide behind the 0 for ever).
				if metric, ok := strings.CutSuffix(expr, orZero); ok {
					r, err := prom.query(metric)
					if err != nil {
						t.Fatal(err)
					}
					requireSeries(t, metric, r)
				}
			})
		}
	})

	t.Run("every dashboard variable has values", func(t *testing.T) {
		for _, v := range dashboardVariables(t) {
			t.Run(v.name, func(t *testing.T) {
				values, err := prom.labelValues(v.label, dashboardVars.Replace(v.selector))
				if err != nil {
					t.Fatal(err)
				}
				if len(values) == 0 {
					t.Fatalf("label_values(%s, %s) is empty", v.selector, v.label)
				}
				t.Logf("%s: %v", v.name, values)
			})
		}
	})

	groups, err := prom.rules()
	if err != nil {
		t.Fatal(err)
	}
	source := ruleSource(t)
	loaded := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			loaded++
			t.Run(r.Type+" rule "+r.Name+" is healthy and returns series", func(t *testing.T) {
				if r.Health != "ok" || r.LastError != "" {
					t.Fatalf("health %q, last error %q", r.Health, r.LastError)
				}
				res, err := prom.query(r.Query)
				if err != nil {
					t.Fatal(err)
				}
				if r.Type == "recording" {
					requireSeries(t, r.Query, res)
					recorded, err := prom.query(r.Name)
					if err != nil {
						t.Fatal(err)
					}
					requireSeries(t, r.Name, recorded)
					return
				}
				inner, ok := alertSeries[r.Name]
				if !ok {
					t.Fatalf("alertSeries has no entry for %s: add its expression without the comparison", r.Name)
				}
				for _, expr := range inner {
					if !strings.Contains(squeeze(source[r.Name]), squeeze(expr)) {
						t.Fatalf("alertSeries entry %q is not part of the alert's expression %q", expr, source[r.Name])
					}
					res, err := prom.query(expr)
					if err != nil {
						t.Fatal(err)
					}
					requireSeries(t, expr, res)
				}
			})
		}
	}
	if loaded != len(source) {
		t.Errorf("Prometheus loaded %d rules, rules.yml has %d", loaded, len(source))
	}
	for name := range alertSeries {
		if _, ok := source[name]; !ok {
			t.Errorf("alertSeries names %s, which rules.yml does not define", name)
		}
	}

	t.Run("the certificate alerts fire for the 5-day certificate and the expired one only", func(t *testing.T) {
		for alert, want := range map[string]string{
			"ApinizerCertificateExpiringSoon": "expires-in-5-days",
			"ApinizerCertificateExpired":      "expired-yesterday",
		} {
			r, err := prom.query(fmt.Sprintf(`ALERTS{alertname=%q, alertstate="firing"}`, alert))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range r {
				got = append(got, s.Metric["certificate"])
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("%s fires for %v, want [%s] (certificates in 5, 20, 400 days and one expired)", alert, got, want)
			}
		}
	})

	t.Run("the failing environment shows a non-zero failure rate and the healthy one zero", func(t *testing.T) {
		want := map[string]bool{"staging": true, "production": false} // environment: failing
		expr := dashboardVars.Replace(dashboardExpr(t, "Deployment failure rate by environment"))
		for name, q := range map[string]string{
			"dashboard panel": expr,
			"recording rule":  `job_operation_environment:apiops_environment_deployment_failures:ratio_rate5m`,
		} {
			r, err := prom.query(q)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, s := range r {
				env := s.Metric["environment"]
				got[env] = got[env] || s.Value > 0
				if math.IsNaN(s.Value) {
					t.Errorf("%s: %s is NaN", name, env)
				}
			}
			for env, failing := range want {
				if got[env] != failing {
					t.Errorf("%s: %s failure rate non-zero = %t, want %t (series %v)", name, env, got[env], failing, r)
				}
			}
		}
	})
}

// requireSeries fails unless r has a series with a number (NaN is what a ratio or quantile of
// nothing gives, so a result of NaNs only fails too).
func requireSeries(t *testing.T, expr string, r []sample) {
	t.Helper()
	for _, s := range r {
		if !math.IsNaN(s.Value) {
			t.Logf("%s: %d series, e.g. %v", expr, len(r), s)
			return
		}
	}
	t.Errorf("%s: no series with a value (got %v)", expr, r)
}

func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

// prometheusBinary finds Debian's prometheus, skipping the test when it is missing unless
// PROMETHEUS_REQUIRED=true (CI), which turns the skip into a failure.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err == nil {
		return bin
	}
	if os.Getenv("PROMETHEUS_REQUIRED") == "true" {
		t.Fatalf("PROMETHEUS_REQUIRED=true but %v: install Debian's prometheus package", err)
	}
	t.Skipf("%v: install Debian's prometheus package (apt-get install prometheus) to run this test", err)
	return ""
}

// env is the system under test: a real JetStream server, the Apinizer simulator and a real
// worker whose private registry is served on 127.0.0.1.
type env struct {
	js          jetstream.JetStream
	sim         *apinizertest.Server
	results     jetstream.Consumer
	metricsAddr string
	finished    int
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, js := natstest.Connect(t, natstest.RunServer(t))
	topo := streams.Config{AckWait: 3 * time.Second, MaxDeliver: 5, DuplicateWindow: time.Minute}.WithDefaults()
	if err := streams.Provision(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	sim := apinizertest.NewServer(apinizertest.Config{Token: token})
	t.Cleanup(sim.Close)
	sim.AddProject(healthy, "production", "staging")
	sim.AddProject(flaky, "production", "staging")
	sim.FailEnvironment(flaky, "staging", true)

	// The certificate inventory's rows and alerts: certificates expiring in 5, 20 and 400
	// days, and one that expired yesterday.
	now := time.Now().UTC().Truncate(time.Second)
	for name, days := range map[string]int{"expires-in-5-days": 5, "expires-in-20-days": 20, "expires-in-400-days": 400, "expired-yesterday": -1} {
		pemText, err := selfsigned.PEMValid(name+".example", now.Add(-30*24*time.Hour), now.Add(time.Duration(days)*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		sim.DeployCertificate(healthy, name, "production", pemText)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	t.Cleanup(srv.Close)

	ex, err := executor.New(executor.Config{
		BaseURL:       sim.URL,
		Token:         func() (string, error) { return token, nil },
		Retry:         executor.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: time.Second, Multiplier: 2},
		WrapTransport: m.InstrumentRoundTripper,
	})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.New(kv, ledger.Config{Owner: "e2e", Lease: 2 * topo.AckWait})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{
		Concurrency:     4,
		FetchWait:       500 * time.Millisecond,
		BacklogInterval: 200 * time.Millisecond,
		RedeliveryDelay: func(uint64) time.Duration { return 100 * time.Millisecond },
		Ledger:          led,
		Logger:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Metrics:         m,
	}, js, cons, ex)
	if err != nil {
		t.Fatal(err)
	}
	workertest.Run(t, w)

	if err := streams.ProvisionInventory(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.New(inventory.Config{Projects: []string{healthy}, Interval: time.Minute}, ex, js, reg,
		slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	invCtx, stopInventory := context.WithCancel(context.Background())
	invDone := make(chan error, 1)
	go func() { invDone <- inv.Run(invCtx) }()
	t.Cleanup(func() {
		stopInventory()
		if err := <-invDone; err != nil {
			t.Errorf("inventory: %v", err)
		}
	})

	results, err := js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: js, sim: sim, results: results, metricsAddr: srv.Listener.Addr().String()}
}

// runWave publishes one job of each fate, waits for their results, checks each status and
// returns how many jobs have finished in all waves so far.
func (e *env) runWave(t *testing.T, wave int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := func(s string) string { return fmt.Sprintf("w%d-%s", wave, s) }
	e.sim.AddKey(healthy, id("key"))
	e.sim.AddCredential(healthy, id("user"), false)
	e.sim.AddKey(flaky, id("key"))
	// The healthy key's first DELETE is answered 503 and retried. Not the missing key's: a
	// "not found" after an earlier attempt means "already gone", and that job would succeed.
	e.sim.AddFault(apinizertest.Fault{
		Method: http.MethodDelete, PathPrefix: "/apiops/projects/" + healthy + "/keys/" + id("key") + "/", Times: 1,
		Reply: apinizertest.HTMLReply(http.StatusServiceUnavailable),
	})

	want := map[string]jobs.Status{}
	for _, c := range []struct {
		job  jobs.Job
		want jobs.Status
	}{
		{&jobs.KeyDelete{JobID: id("succeeded-key"), ProjectName: healthy, KeyName: id("key")}, jobs.StatusSucceeded},
		{&jobs.CredentialDelete{JobID: id("succeeded-credential"), ProjectName: healthy, Username: id("user")}, jobs.StatusSucceeded},
		{&jobs.KeyDelete{JobID: id("partial"), ProjectName: flaky, KeyName: id("key")}, jobs.StatusPartial},
		{&jobs.KeyDelete{JobID: id("failed"), ProjectName: healthy, KeyName: id("missing-key")}, jobs.StatusFailed},
	} {
		if _, err := jobs.Publish(ctx, e.js, c.job); err != nil {
			t.Fatalf("publish %s: %v", c.job.ID(), err)
		}
		want[c.job.ID()] = c.want
	}
	invalid := nats.NewMsg(jobs.SubjectKeyDelete)
	invalid.Data = []byte(`{"projectName":`)
	invalid.Header.Set(nats.MsgIdHdr, id("invalid"))
	if _, err := e.js.PublishMsg(ctx, invalid); err != nil {
		t.Fatal(err)
	}
	want[id("invalid")] = jobs.StatusFailed

	for range want {
		msg, err := e.results.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("wave %d: waiting for results: %v", wave, err)
		}
		var r jobs.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != want[r.JobID] {
			t.Errorf("job %s ended %s, want %s (error %+v)", r.JobID, r.Status, want[r.JobID], r.Error)
		}
		e.finished++
	}
	return e.finished
}

// prom is a prometheus server run from the binary for one test.
type prom struct {
	url    string
	client *http.Client
}

// startPrometheus runs bin scraping target every second and evaluating a copy of rules.yml
// every second, killed when the test ends.
func startPrometheus(t *testing.T, bin, target string) *prom {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile("rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yml
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, scrapeJob, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var out capture.Buffer
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	p := &prom{url: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(p.client.CloseIdleConnections)
	p.waitFor(t, 30*time.Second, "prometheus to be ready", func() (bool, error) {
		select {
		case err := <-exited:
			return false, fmt.Errorf("prometheus exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := p.client.Get(p.url + "/-/ready")
		if err != nil {
			return false, nil // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return p
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond every 100ms until it holds, failing the test on its error or after
// timeout.
func (p *prom) waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string
	Value  float64
}

func (s sample) String() string { return fmt.Sprintf("%v %g", s.Metric, s.Value) }

// apiError is the error a Prometheus API call answered.
type apiError struct {
	Type, Message string
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

// get calls a Prometheus API endpoint and decodes its data into v.
func (p *prom) get(path string, params url.Values, v any) error {
	resp, err := p.client.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	if envelope.Status != "success" {
		return &apiError{Type: envelope.ErrorType, Message: envelope.Error}
	}
	if len(envelope.Warnings) > 0 {
		return fmt.Errorf("%s: warnings: %v", path, envelope.Warnings)
	}
	return json.Unmarshal(envelope.Data, v)
}

// query evaluates expr now; it must give an instant vector (or a scalar, returned as one
// series without labels).
func (p *prom) query(expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	var raw []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	switch data.ResultType {
	case "vector":
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
	case "scalar":
		raw = make([]struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}, 1)
		if err := json.Unmarshal(data.Result, &raw[0].Value); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, data.ResultType)
	}
	out := make([]sample, 0, len(raw))
	for _, r := range raw {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

func (p *prom) labelValues(label, selector string) ([]string, error) {
	var values []string
	err := p.get("/api/v1/label/"+url.PathEscape(label)+"/values", url.Values{"match[]": {selector}}, &values)
	return values, err
}

// ruleGroup is a group as /api/v1/rules reports it.
type ruleGroup struct {
	Name           string    `json:"name"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Rules          []struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Type      string `json:"type"` // recording or alerting
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	} `json:"rules"`
}

func (p *prom) rules() ([]ruleGroup, error) {
	var data struct {
		Groups []ruleGroup `json:"groups"`
	}
	err := p.get("/api/v1/rules", nil, &data)
	return data.Groups, err
}

// panelTarget is one query of one dashboard panel.
type panelTarget struct {
	name, expr string
}

type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a row's
}

type dashboard struct {
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "grafana", "apiops-worker.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("apiops-worker.json: %v", err)
	}
	return d
}

// dashboardTargets returns every panel's queries, rows' panels included.
func dashboardTargets(t *testing.T) []panelTarget {
	t.Helper()
	var out []panelTarget
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, panelTarget{name: p.Title + " " + tg.RefID, expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(readDashboard(t).Panels)
	if len(out) == 0 {
		t.Fatal("the dashboard has no panel queries")
	}
	return out
}

// dashboardExpr returns the only query of the panel titled title.
func dashboardExpr(t *testing.T, title string) string {
	t.Helper()
	var found []string
	for _, pt := range dashboardTargets(t) {
		if strings.HasPrefix(pt.name, title+" ") {
			found = append(found, pt.expr)
		}
	}
	if len(found) != 1 {
		t.Fatalf("panel %q has %d queries, want 1", title, len(found))
	}
	return found[0]
}

type dashboardVariable struct {
	name, selector, label string
}

// dashboardVariables returns the query variables, each a label_values(selector, label).
func dashboardVariables(t *testing.T) []dashboardVariable {
	t.Helper()
	re := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	var out []dashboardVariable
	for _, v := range readDashboard(t).Templating.List {
		if v.Type != "query" {
			continue
		}
		m := re.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
		}
		out = append(out, dashboardVariable{name: v.Name, selector: m[1], label: m[2]})
	}
	return out
}

// testWriter sends the worker's logs to the test's log, shown when it fails or with -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
