package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/metrics"
)

// header is each metric's HELP and TYPE lines as exposed: testutil compares them too, so a
// changed meaning shows up here and must be carried to docs/metrics.md.
var header = map[string]string{
	"apiops_jobs_finished_total": `# HELP apiops_jobs_finished_total Jobs that reached a final state, by operation and status (succeeded, partial, failed, superseded).
# TYPE apiops_jobs_finished_total counter
`,
	"apiops_environment_deployments_total": `# HELP apiops_environment_deployments_total Per-environment deployment outcomes reported by Apinizer (success, failure), by operation and environment.
# TYPE apiops_environment_deployments_total counter
`,
	"apiops_environment_deployment_failures_total": `# HELP apiops_environment_deployment_failures_total Per-environment deployment failures reported by Apinizer, including those of partial jobs.
# TYPE apiops_environment_deployment_failures_total counter
`,
	"apiops_retries_total": `# HELP apiops_retries_total Retries, by operation and reason: http_5xx, http_429, http_4xx, timeout, transport, outage, job_busy, resource_busy, ledger, result_publish, dlq.
# TYPE apiops_retries_total counter
`,
	"apiops_invalid_jobs_total": `# HELP apiops_invalid_jobs_total Messages refused as invalid jobs, by reason code.
# TYPE apiops_invalid_jobs_total counter
`,
	"apiops_dead_letters_total": `# HELP apiops_dead_letters_total Jobs dead-lettered, by operation and reason.
# TYPE apiops_dead_letters_total counter
`,
	"apiops_handler_panics_total": `# HELP apiops_handler_panics_total Panics recovered while handling a job.
# TYPE apiops_handler_panics_total counter
`,
	"apiops_jobs_in_flight": `# HELP apiops_jobs_in_flight Jobs being worked on by this worker.
# TYPE apiops_jobs_in_flight gauge
`,
	"apiops_circuit_breaker_state": `# HELP apiops_circuit_breaker_state Apinizer circuit breaker: 0 closed, 1 half-open, 2 open.
# TYPE apiops_circuit_breaker_state gauge
`,
	"apiops_consumer_pending_messages": `# HELP apiops_consumer_pending_messages Jobs in the stream not yet delivered to any worker (consumer info, sampled).
# TYPE apiops_consumer_pending_messages gauge
`,
	"apiops_consumer_ack_pending_messages": `# HELP apiops_consumer_ack_pending_messages Jobs delivered and not yet acknowledged (consumer info, sampled).
# TYPE apiops_consumer_ack_pending_messages gauge
`,
	"apiops_consumer_redelivered_messages": `# HELP apiops_consumer_redelivered_messages Jobs delivered more than once and not yet acknowledged (consumer info, sampled).
# TYPE apiops_consumer_redelivered_messages gauge
`,
	"apiops_apinizer_auth_failures_total": `# HELP apiops_apinizer_auth_failures_total Apinizer calls refused for the worker's credentials (401, or the token endpoint refusing the client credentials), by reason: expired, invalid, missing, bad_client_credentials.
# TYPE apiops_apinizer_auth_failures_total counter
`,
	"apiops_apinizer_requests_in_flight": `# HELP apiops_apinizer_requests_in_flight Apinizer HTTP requests under way.
# TYPE apiops_apinizer_requests_in_flight gauge
`,
}

// exposition is the expected text of the named metrics: each name's header, then samples
// (lines of any of the names, in any order).
func exposition(samples string, names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(header[n])
	}
	b.WriteString(samples)
	return b.String()
}

// compare checks the named metrics of reg with testutil. A name with no series must have
// no samples in want.
func compare(t *testing.T, reg prometheus.Gatherer, samples string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exposition(samples, names...)), names...); err != nil {
		t.Error(err)
	}
}

func setup(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return metrics.New(reg), reg
}

func envs(results ...jobs.EnvironmentResult) *jobs.DeploymentResult {
	ok := true
	for _, r := range results {
		ok = ok && r.Success
	}
	return &jobs.DeploymentResult{Success: ok, EnvironmentResults: results}
}

func TestJobFinishedCountsJobsAndEnvironments(t *testing.T) {
	t.Parallel()
	succeeded := jobs.Result{
		JobID: "j1", Subject: jobs.SubjectKeyDelete, Status: jobs.StatusSucceeded,
		DeploymentResult: envs(
			jobs.EnvironmentResult{EnvironmentName: "production", Success: true},
			jobs.EnvironmentResult{EnvironmentName: "staging", Success: true},
		),
	}
	partial := jobs.Result{
		JobID: "j2", Subject: jobs.SubjectKeyDelete, Status: jobs.StatusPartial,
		DeploymentResult: envs(
			jobs.EnvironmentResult{EnvironmentName: "production", Success: true},
			jobs.EnvironmentResult{EnvironmentName: "staging", Success: false, Message: "gateway unreachable"},
		),
	}
	failed := jobs.Result{
		JobID: "j3", Subject: jobs.SubjectCertificateUpdate, Status: jobs.StatusFailed,
		Error: &jobs.ResultError{Code: "not_found", HTTPStatus: 400},
	}
	foreign := jobs.Result{JobID: "j4", Subject: "apiops.certificate.rename", Status: jobs.StatusFailed}

	tests := []struct {
		name                       string
		results                    []jobs.Result
		finished, deployed, failed string
	}{
		{
			name:     "a succeeded job counts once and each environment as a success",
			results:  []jobs.Result{succeeded},
			finished: `apiops_jobs_finished_total{operation="key.delete",status="succeeded"} 1` + "\n",
			deployed: `apiops_environment_deployments_total{environment="production",operation="key.delete",outcome="success"} 1
apiops_environment_deployments_total{environment="staging",operation="key.delete",outcome="success"} 1
`,
		},
		{
			name:    "a partial job counts its failing environment as a failure and the others as successes",
			results: []jobs.Result{succeeded, partial},
			finished: `apiops_jobs_finished_total{operation="key.delete",status="succeeded"} 1
apiops_jobs_finished_total{operation="key.delete",status="partial"} 1
`,
			deployed: `apiops_environment_deployments_total{environment="production",operation="key.delete",outcome="success"} 2
apiops_environment_deployments_total{environment="staging",operation="key.delete",outcome="success"} 1
apiops_environment_deployments_total{environment="staging",operation="key.delete",outcome="failure"} 1
`,
			failed: `apiops_environment_deployment_failures_total{environment="staging",operation="key.delete"} 1` + "\n",
		},
		{
			name:     "a failed job without a deployment report counts no environment",
			results:  []jobs.Result{failed, failed},
			finished: `apiops_jobs_finished_total{operation="certificate.update",status="failed"} 2` + "\n",
		},
		{
			name:     "a job on a foreign subject counts under operation unknown",
			results:  []jobs.Result{foreign},
			finished: `apiops_jobs_finished_total{operation="unknown",status="failed"} 1` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, reg := setup(t)
			for _, r := range tt.results {
				m.JobFinished(r, 1500*time.Millisecond)
			}
			compare(t, reg, tt.finished, "apiops_jobs_finished_total")
			compare(t, reg, tt.deployed, "apiops_environment_deployments_total")
			compare(t, reg, tt.failed, "apiops_environment_deployment_failures_total")

			// Every result is one observation of its operation's duration.
			wantCount := map[string]uint64{}
			for _, r := range tt.results {
				wantCount[metrics.Operation(r.Subject)]++
			}
			gotCount := map[string]uint64{}
			for _, s := range histograms(t, reg, "apiops_job_duration_seconds") {
				gotCount[s.labels["operation"]] = s.count
				if want := 1.5 * float64(s.count); s.sum != want {
					t.Errorf("job duration sum for %v = %g, want %g", s.labels, s.sum, want)
				}
			}
			if diff := cmp.Diff(wantCount, gotCount); diff != "" {
				t.Errorf("job duration observations by operation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCountersAndGaugesRecordWhatTheyAreTold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		record  func(*metrics.Metrics)
		metric  string
		samples string
	}{
		{
			name: "retries count by operation and reason",
			record: func(m *metrics.Metrics) {
				m.Retry(jobs.SubjectKeyDelete, "http_5xx")
				m.Retry(jobs.SubjectKeyDelete, "http_5xx")
				m.Retry(jobs.SubjectCredentialDelete, "resource_busy")
			},
			metric: "apiops_retries_total",
			samples: `apiops_retries_total{operation="key.delete",reason="http_5xx"} 2
apiops_retries_total{operation="credential.delete",reason="resource_busy"} 1
`,
		},
		{
			name: "invalid jobs count by reason",
			record: func(m *metrics.Metrics) {
				m.InvalidJob("malformed_job")
				m.InvalidJob("missing_field")
				m.InvalidJob("missing_field")
			},
			metric: "apiops_invalid_jobs_total",
			samples: `apiops_invalid_jobs_total{reason="malformed_job"} 1
apiops_invalid_jobs_total{reason="missing_field"} 2
`,
		},
		{
			name: "dead letters count by operation and reason, a foreign subject as unknown",
			record: func(m *metrics.Metrics) {
				m.DeadLetter(jobs.SubjectCertificateCreate, "retries_exhausted")
				m.DeadLetter("apiops.results.key.delete", "invalid_job")
			},
			metric: "apiops_dead_letters_total",
			samples: `apiops_dead_letters_total{operation="certificate.create",reason="retries_exhausted"} 1
apiops_dead_letters_total{operation="unknown",reason="invalid_job"} 1
`,
		},
		{
			name:   "every auth failure reason starts at zero, so the first failure is an increase",
			record: func(*metrics.Metrics) {},
			metric: "apiops_apinizer_auth_failures_total",
			samples: `apiops_apinizer_auth_failures_total{reason="bad_client_credentials"} 0
apiops_apinizer_auth_failures_total{reason="expired"} 0
apiops_apinizer_auth_failures_total{reason="invalid"} 0
apiops_apinizer_auth_failures_total{reason="missing"} 0
`,
		},
		{
			name: "auth failures count by reason, an unknown reason as invalid",
			record: func(m *metrics.Metrics) {
				m.AuthFailure("expired")
				m.AuthFailure("expired")
				m.AuthFailure("bad_client_credentials")
				m.AuthFailure("missing")
				m.AuthFailure("secret-token rejected")
				m.AuthFailure("")
			},
			metric: "apiops_apinizer_auth_failures_total",
			samples: `apiops_apinizer_auth_failures_total{reason="bad_client_credentials"} 1
apiops_apinizer_auth_failures_total{reason="expired"} 2
apiops_apinizer_auth_failures_total{reason="invalid"} 2
apiops_apinizer_auth_failures_total{reason="missing"} 1
`,
		},
		{
			name:    "panics count without labels",
			record:  func(m *metrics.Metrics) { m.Panic(); m.Panic() },
			metric:  "apiops_handler_panics_total",
			samples: "apiops_handler_panics_total 2\n",
		},
		{
			name:    "panics start at zero",
			record:  func(*metrics.Metrics) {},
			metric:  "apiops_handler_panics_total",
			samples: "apiops_handler_panics_total 0\n",
		},
		{
			name:    "the breaker starts closed",
			record:  func(*metrics.Metrics) {},
			metric:  "apiops_circuit_breaker_state",
			samples: "apiops_circuit_breaker_state 0\n",
		},
		{
			name:    "the breaker state is the last one set",
			record:  func(m *metrics.Metrics) { m.BreakerState(2); m.BreakerState(1) },
			metric:  "apiops_circuit_breaker_state",
			samples: "apiops_circuit_breaker_state 1\n",
		},
		{
			name:    "the breaker can be open",
			record:  func(m *metrics.Metrics) { m.BreakerState(2) },
			metric:  "apiops_circuit_breaker_state",
			samples: "apiops_circuit_breaker_state 2\n",
		},
		{
			name:    "jobs in flight add up the deltas",
			record:  func(m *metrics.Metrics) { m.InFlight(1); m.InFlight(1); m.InFlight(1); m.InFlight(-1) },
			metric:  "apiops_jobs_in_flight",
			samples: "apiops_jobs_in_flight 2\n",
		},
		{
			name:    "pending messages are the last sample",
			record:  func(m *metrics.Metrics) { m.Backlog(10, 3, 1); m.Backlog(7, 2, 0) },
			metric:  "apiops_consumer_pending_messages",
			samples: "apiops_consumer_pending_messages 7\n",
		},
		{
			name:    "ack pending messages are the last sample",
			record:  func(m *metrics.Metrics) { m.Backlog(10, 3, 1); m.Backlog(7, 2, 0) },
			metric:  "apiops_consumer_ack_pending_messages",
			samples: "apiops_consumer_ack_pending_messages 2\n",
		},
		{
			name:    "redelivered messages are the last sample",
			record:  func(m *metrics.Metrics) { m.Backlog(10, 3, 1); m.Backlog(7, 2, 5) },
			metric:  "apiops_consumer_redelivered_messages",
			samples: "apiops_consumer_redelivered_messages 5\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, reg := setup(t)
			tt.record(m)
			compare(t, reg, tt.samples, tt.metric)
		})
	}
}

func TestOperationIsTheSubjectWithoutPrefixOrUnknown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject, want string
	}{
		{jobs.SubjectCertificateUpdate, "certificate.update"},
		{jobs.SubjectCertificateCreate, "certificate.create"},
		{jobs.SubjectCertificateDelete, "certificate.delete"},
		{jobs.SubjectKeyDelete, "key.delete"},
		{jobs.SubjectCredentialDelete, "credential.delete"},
		{jobs.SubjectCredentialPublicKeyDelete, "credential.publickey.delete"},
		{"apiops.certificate.rename", "unknown"},
		{"apiops.results.key.delete", "unknown"},
		{"apiops.key.delete.secret-name", "key.delete"}, // a scoped subject: its project token is no label
		{"apiops.key.delete.secret.name", "unknown"},
		{"", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.subject+" is "+tt.want, func(t *testing.T) {
			t.Parallel()
			if got := metrics.Operation(tt.subject); got != tt.want {
				t.Errorf("Operation(%q) = %q, want %q", tt.subject, got, tt.want)
			}
		})
	}
	for _, s := range jobs.Subjects {
		if metrics.Operation(s) == "unknown" {
			t.Errorf("job subject %s maps to unknown", s)
		}
	}
}

func TestNewKeepsNoGlobalState(t *testing.T) {
	t.Parallel()
	m1, reg1 := setup(t)
	_, reg2 := setup(t) // a second New on a fresh registry must not panic
	m1.Retry(jobs.SubjectKeyDelete, "http_5xx")
	m1.BreakerState(2)

	compare(t, reg1, `apiops_retries_total{operation="key.delete",reason="http_5xx"} 1`+"\n", "apiops_retries_total")
	compare(t, reg2, "", "apiops_retries_total")
	compare(t, reg2, "apiops_circuit_breaker_state 0\n", "apiops_circuit_breaker_state")
	if n, err := testutil.GatherAndCount(prometheus.DefaultGatherer, "apiops_build_info", "apiops_retries_total"); err != nil || n != 0 {
		t.Errorf("the default registry has %d apiops series (err %v), want none", n, err)
	}
	if n, err := testutil.GatherAndCount(reg2, "apiops_build_info"); err != nil || n != 1 {
		t.Errorf("apiops_build_info has %d series (err %v), want 1", n, err)
	}
}

func TestMetricsFollowPrometheusNamingConventions(t *testing.T) {
	t.Parallel()
	m, reg := setup(t)
	recordEverything(m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestInstrumentRoundTripperMeasuresApinizerRequests(t *testing.T) {
	t.Parallel()
	m, reg := setup(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: m.InstrumentRoundTripper(http.DefaultTransport)}
	defer client.CloseIdleConnections()
	for _, method := range []string{http.MethodGet, http.MethodGet, http.MethodDelete} {
		req, err := http.NewRequest(method, srv.URL+"/apiops/projects/secret-project/keys/secret-name/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	got := map[string]uint64{}
	for _, s := range histograms(t, reg, "apiops_apinizer_request_duration_seconds") {
		got[s.labels["method"]+" "+s.labels["code"]] = s.count
	}
	if diff := cmp.Diff(map[string]uint64{"get 200": 2, "delete 400": 1}, got); diff != "" {
		t.Errorf("requests by method and code (-want +got):\n%s", diff)
	}
	compare(t, reg, "apiops_apinizer_requests_in_flight 0\n", "apiops_apinizer_requests_in_flight")
}

// TestNoLabelCarriesJobIDsResourceNamesOrSecrets records everything with identifying values
// where a careless implementation would use them, and searches the whole exposition.
func TestNoLabelCarriesJobIDsResourceNamesOrSecrets(t *testing.T) {
	t.Parallel()
	m, reg := setup(t)
	recordEverything(m)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			series++
			for _, l := range metric.GetLabel() {
				if strings.Contains(l.GetValue(), "secret") {
					t.Errorf("%s has label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if series < 10 {
		t.Fatalf("gathered only %d series: recordEverything recorded too little to prove anything", series)
	}
}

// recordEverything calls every recording method, with values that identify a job, its
// resource, its project and a token wherever the API lets them in.
func recordEverything(m *metrics.Metrics) {
	m.JobFinished(jobs.Result{
		JobID: "secret-job", Subject: jobs.SubjectCertificateUpdate, ProjectName: "secret-project",
		ResourceName: "secret-name", Status: jobs.StatusPartial,
		DeploymentResult: envs(
			jobs.EnvironmentResult{EnvironmentName: "production", Success: true, Message: "secret-name deployed"},
			jobs.EnvironmentResult{EnvironmentName: "staging", Success: false, Message: "secret-name: Bearer secret-token refused"},
		),
		Error:        &jobs.ResultError{Code: "partial", Message: "secret-job secret-name secret-token"},
		SupersededBy: "secret-job-2",
		ReplayOf:     "secret-job-0",
	}, time.Second)
	m.JobFinished(jobs.Result{JobID: "secret-job-3", Subject: "apiops.key.delete.secret-name", ResourceName: "secret-name", Status: jobs.StatusFailed}, time.Second)
	m.Retry(jobs.SubjectKeyDelete, "http_5xx")
	m.InvalidJob("malformed_job")
	m.DeadLetter(jobs.SubjectKeyDelete, "retries_exhausted")
	m.Panic()
	m.BreakerState(2)
	m.Backlog(1, 2, 3)
	m.InFlight(1)
	m.AuthFailure("Bearer secret-token was expired")
}

// histogram is one histogram series' labels, sample count and sum.
type histogram struct {
	labels map[string]string
	count  uint64
	sum    float64
}

func histograms(t *testing.T, reg prometheus.Gatherer, name string) []histogram {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []histogram
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			h := histogram{labels: map[string]string{}, count: metric.GetHistogram().GetSampleCount(), sum: metric.GetHistogram().GetSampleSum()}
			for _, l := range metric.GetLabel() {
				h.labels[l.GetName()] = l.GetValue()
			}
			out = append(out, h)
		}
	}
	return out
}

func TestEnvironmentLabelsAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	var envs []jobs.EnvironmentResult
	for i := range 100 {
		envs = append(envs, jobs.EnvironmentResult{EnvironmentName: fmt.Sprintf("env-%03d", i), Success: false})
	}
	envs = append(envs, jobs.EnvironmentResult{EnvironmentName: "bad\nname", Success: false})
	m.JobFinished(jobs.Result{Subject: jobs.SubjectKeyDelete, Status: jobs.StatusPartial, DeploymentResult: &jobs.DeploymentResult{EnvironmentResults: envs}}, time.Second)
	got, err := testutil.GatherAndCount(reg, "apiops_environment_deployment_failures_total")
	if err != nil {
		t.Fatal(err)
	}
	if got != 65 { // 64 names and "other"
		t.Errorf("%d failure series for 101 environment names, want 65 (64 and \"other\")", got)
	}
}
