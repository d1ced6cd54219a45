package metrics

import "github.com/prometheus/client_golang/prometheus"

// JetStreamObjects are the values of the object label of
// apiops_jetstream_unavailable: what the worker stores into. They are the
// streams package's names, spelled out so that metrics imports no streams.
var JetStreamObjects = []string{"apiops_ledger", "APIOPS_RESULTS", "APIOPS_DLQ"}

func newJetStreamUnavailable(reg prometheus.Registerer) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "jetstream_unavailable",
		Help: "1 while JetStream cannot store into the object (the ledger bucket, the results or the dead-letter stream): storage full, stream missing, no responders, timeout. Jobs wait, spending no delivery.",
	}, []string{"object"})
	// Born at 0, so that an alert can tell "fine" from "never measured".
	for _, o := range JetStreamObjects {
		g.WithLabelValues(o)
	}
	reg.MustRegister(g)
	return g
}

// JetStreamUnavailable records whether JetStream can store into object.
func (m *Metrics) JetStreamUnavailable(object string, unavailable bool) {
	v := 0.0
	if unavailable {
		v = 1
	}
	m.jsUnavailable.WithLabelValues(object).Set(v)
}

func newStrandedJobs(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "stranded_jobs",
		Help: "Jobs the server gave up on (their deliveries ran out) still in APIOPS_JOBS with no final result, as the last stranded-jobs check counted them; 0 on replicas not holding its lease. enqueue dlq stranded --redrive finishes them.",
	})
	reg.MustRegister(g)
	return g
}

// StrandedJobs records the last stranded-jobs check's count.
func (m *Metrics) StrandedJobs(n int) { m.strandedJobs.Set(float64(n)) }
