// Package metrics defines the worker's Prometheus metrics on a registry the
// caller passes in. Label values are bounded: operations, environments,
// statuses, reasons and status classes; never job ids, resource names or
// secrets. The catalogue is in docs/metrics.md.
package metrics

import (
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apiops-worker/apiops-worker/jobs"
)

const namespace = "apiops"

// maxEnvironments bounds the environment label's values: the names come
// from Apinizer's answers, and a misbehaving server must not be able to
// create series without end. Further names are counted as "other".
const maxEnvironments = 64

// Metrics holds the worker's collectors.
type Metrics struct {
	envMu sync.Mutex
	envs  map[string]bool

	jobsFinished     *prometheus.CounterVec
	jobDuration      *prometheus.HistogramVec
	envDeployments   *prometheus.CounterVec
	envFailures      *prometheus.CounterVec
	retries          *prometheus.CounterVec
	inFlight         prometheus.Gauge
	invalidJobs      *prometheus.CounterVec
	deadLetters      *prometheus.CounterVec
	panics           prometheus.Counter
	breakerState     prometheus.Gauge
	consumerPending  prometheus.Gauge
	consumerAcking   prometheus.Gauge
	consumerRedeliv  prometheus.Gauge
	requestDuration  *prometheus.HistogramVec
	requestsInFlight prometheus.Gauge
	authFailures     *prometheus.CounterVec
	jsUnavailable    *prometheus.GaugeVec
	strandedJobs     prometheus.Gauge
}

// New creates the collectors and registers them, with build info, on reg;
// the caller registers the Go and process collectors.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		envs: make(map[string]bool),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "jobs_finished_total",
			Help: "Jobs that reached a final state, by operation and status (succeeded, partial, failed, superseded).",
		}, []string{"operation", "status"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "job_duration_seconds",
			Help:    "Time from a job's first delivery to its final result, by operation.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900},
		}, []string{"operation"}),
		envDeployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "environment_deployments_total",
			Help: "Per-environment deployment outcomes reported by Apinizer (success, failure), by operation and environment.",
		}, []string{"operation", "environment", "outcome"}),
		envFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "environment_deployment_failures_total",
			Help: "Per-environment deployment failures reported by Apinizer, including those of partial jobs.",
		}, []string{"operation", "environment"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "retries_total",
			Help: "Retries, by operation and reason: http_5xx, http_429, http_4xx, timeout, transport, outage, job_busy, resource_busy, ledger, result_publish, dlq.",
		}, []string{"operation", "reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "jobs_in_flight",
			Help: "Jobs being worked on by this worker.",
		}),
		invalidJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "invalid_jobs_total",
			Help: "Messages refused as invalid jobs, by reason code.",
		}, []string{"reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dead_letters_total",
			Help: "Jobs dead-lettered, by operation and reason.",
		}, []string{"operation", "reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "handler_panics_total",
			Help: "Panics recovered while handling a job.",
		}),
		breakerState: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "circuit_breaker_state",
			Help: "Apinizer circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
		consumerPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "consumer_pending_messages",
			Help: "Jobs in the stream not yet delivered to any worker (consumer info, sampled).",
		}),
		consumerAcking: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "consumer_ack_pending_messages",
			Help: "Jobs delivered and not yet acknowledged (consumer info, sampled).",
		}),
		consumerRedeliv: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "consumer_redelivered_messages",
			Help: "Jobs delivered more than once and not yet acknowledged (consumer info, sampled).",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "apinizer_request_duration_seconds",
			Help:    "Apinizer HTTP request latency, by method and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "code"}),
		requestsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "apinizer_requests_in_flight",
			Help: "Apinizer HTTP requests under way.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "apinizer_auth_failures_total",
			Help: "Apinizer calls refused for the worker's credentials (401, or the token endpoint refusing the client credentials), by reason: expired, invalid, missing, bad_client_credentials.",
		}, []string{"reason"}),
	}
	// Every reason starts at 0, so that increase() sees the first failure:
	// a counter series born at 1 would look unchanged to an alert.
	for _, r := range authReasons {
		m.authFailures.WithLabelValues(r)
	}
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels tell the worker's version.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		m.jobsFinished, m.jobDuration, m.envDeployments, m.envFailures, m.retries,
		m.inFlight, m.invalidJobs, m.deadLetters, m.panics, m.breakerState,
		m.consumerPending, m.consumerAcking, m.consumerRedeliv,
		m.requestDuration, m.requestsInFlight, m.authFailures, buildInfo,
	)
	m.jsUnavailable = newJetStreamUnavailable(reg)
	m.strandedJobs = newStrandedJobs(reg)
	return m
}

// authReasons are the reason label's values, as executor.AuthReason names
// them; they are spelled out here so that metrics needs no executor import.
var authReasons = []string{"expired", "invalid", "missing", "bad_client_credentials"}

// Operation is the bounded operation label of a subject:
// "apiops.certificate.update" is "certificate.update"; a subject that is no
// job subject is "unknown".
func Operation(subject string) string {
	// A scoped subject's project token never becomes a label.
	if bare, _, ok := jobs.ParseSubject(subject); ok {
		return strings.TrimPrefix(bare, "apiops.")
	}
	return "unknown"
}

// JobFinished counts a final result and, from its deployment result, every
// environment's outcome.
func (m *Metrics) JobFinished(r jobs.Result, d time.Duration) {
	op := Operation(r.Subject)
	m.jobsFinished.WithLabelValues(op, string(r.Status)).Inc()
	m.jobDuration.WithLabelValues(op).Observe(d.Seconds())
	if r.DeploymentResult == nil {
		return
	}
	for _, e := range r.DeploymentResult.EnvironmentResults {
		env := m.environment(e.EnvironmentName)
		outcome := "success"
		if !e.Success {
			outcome = "failure"
			m.envFailures.WithLabelValues(op, env).Inc()
		}
		m.envDeployments.WithLabelValues(op, env, outcome).Inc()
	}
}

// environment returns the label value for an environment name: the name,
// while fewer than maxEnvironments names have been seen and it is a
// plausible name, else "other".
func (m *Metrics) environment(name string) string {
	if len(name) == 0 || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "other"
	}
	m.envMu.Lock()
	defer m.envMu.Unlock()
	if !m.envs[name] {
		if len(m.envs) >= maxEnvironments {
			return "other"
		}
		m.envs[name] = true
	}
	return name
}

// Retry counts one retry of an operation for a reason.
func (m *Metrics) Retry(subject, reason string) {
	m.retries.WithLabelValues(Operation(subject), reason).Inc()
}

// InFlight adds delta to the jobs in flight.
func (m *Metrics) InFlight(delta int) { m.inFlight.Add(float64(delta)) }

// InvalidJob counts a message refused as an invalid job.
func (m *Metrics) InvalidJob(reason string) { m.invalidJobs.WithLabelValues(reason).Inc() }

// DeadLetter counts a dead-lettered job.
func (m *Metrics) DeadLetter(subject, reason string) {
	m.deadLetters.WithLabelValues(Operation(subject), reason).Inc()
}

// Panic counts a recovered handler panic.
func (m *Metrics) Panic() { m.panics.Inc() }

// BreakerState records the circuit breaker's state: 0 closed, 1 half-open,
// 2 open.
func (m *Metrics) BreakerState(state int) { m.breakerState.Set(float64(state)) }

// Backlog records the consumer's backlog as read from consumer info.
func (m *Metrics) Backlog(pending, ackPending, redelivered int) {
	m.consumerPending.Set(float64(pending))
	m.consumerAcking.Set(float64(ackPending))
	m.consumerRedeliv.Set(float64(redelivered))
}

// InstrumentRoundTripper wraps the Apinizer HTTP transport so every request's
// latency and status code are measured.
func (m *Metrics) InstrumentRoundTripper(next http.RoundTripper) http.RoundTripper {
	return promhttp.InstrumentRoundTripperInFlight(m.requestsInFlight,
		promhttp.InstrumentRoundTripperDuration(m.requestDuration, next))
}

// AuthFailure counts one call refused for the worker's credentials, with the
// reason executor.AuthReason gives. Any other value counts as "invalid",
// the executor's own reason for a refusal it cannot tell apart, so the label
// keeps its four values.
func (m *Metrics) AuthFailure(reason string) {
	if !slices.Contains(authReasons, reason) {
		reason = "invalid"
	}
	m.authFailures.WithLabelValues(reason).Inc()
}
