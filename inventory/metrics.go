package inventory

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Error reasons, the bounded values of apiops_inventory_errors_total's
// reason label.
const (
	reasonUnauthorized    = "unauthorized"      // Apinizer rejected the token
	reasonProjectNotFound = "project_not_found" // a configured project does not exist
	reasonUnavailable     = "unavailable"       // Apinizer did not answer, or failed (5xx, transport)
	reasonRefused         = "refused"           // any other refusal
	reasonInvalidResponse = "invalid_response"  // an answer, or a date in it, that cannot be read
	reasonPublish         = "publish"           // an expiry event, or the snapshot, could not be written
	reasonLease           = "lease"             // the lease bucket could not be read or written
)

var errorReasons = []string{reasonUnauthorized, reasonProjectNotFound, reasonUnavailable, reasonRefused, reasonInvalidResponse, reasonPublish, reasonLease}

// entry is one certificate in one environment, as the last round saw it.
type entry struct {
	project, certificate, environment string
	thumbprint, subject               string
	notBefore, notAfter               time.Time
}

// snapshot is what the lease holder exports: the last round's entries
// (capped), how many pairs it saw and dropped, and its last full success.
type snapshot struct {
	entries     []entry
	seen        int
	dropped     int
	lastSuccess time.Time
}

// collector exports the snapshot while this replica holds the lease, and
// nothing otherwise: the replicas' series never overlap, and a replica that
// lost the lease stops exporting at once, not at its next round. The
// series of a certificate deleted in Apinizer are gone after the next
// round, as the snapshot is replaced whole.
type collector struct {
	held func() bool

	mu   sync.Mutex
	snap snapshot

	notAfter, notBefore, info, certificates, dropped, lastSuccess *prometheus.Desc
}

func newCollector(held func() bool) *collector {
	labels := []string{"project", "certificate", "environment"}
	return &collector{
		held: held,
		notAfter: prometheus.NewDesc("apiops_certificate_not_after_timestamp_seconds",
			"The certificate's notAfter (expiry), in seconds since the epoch, as Apinizer serves it in the environment.", labels, nil),
		notBefore: prometheus.NewDesc("apiops_certificate_not_before_timestamp_seconds",
			"The certificate's notBefore, in seconds since the epoch, as Apinizer serves it in the environment.", labels, nil),
		info: prometheus.NewDesc("apiops_certificate_info",
			"Always 1; the labels tell the subject and SHA-1 thumbprint of the certificate served in the environment.",
			append(labels, "subject", "sha1_thumbprint"), nil),
		certificates: prometheus.NewDesc("apiops_inventory_certificates",
			"Certificate/environment pairs the last inventory round saw, exported or not.", nil, nil),
		dropped: prometheus.NewDesc("apiops_inventory_dropped_certificates",
			"Certificate/environment pairs the last round did not export, beyond the series cap (the latest-expiring ones).", nil, nil),
		lastSuccess: prometheus.NewDesc("apiops_inventory_last_success_timestamp_seconds",
			"When an inventory round last read every project without an error, in seconds since the epoch.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.notAfter, c.notBefore, c.info, c.certificates, c.dropped, c.lastSuccess} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if !c.held() {
		return
	}
	c.mu.Lock()
	s := c.snap
	c.mu.Unlock()
	for _, e := range s.entries {
		ch <- prometheus.MustNewConstMetric(c.notAfter, prometheus.GaugeValue, seconds(e.notAfter), e.project, e.certificate, e.environment)
		ch <- prometheus.MustNewConstMetric(c.notBefore, prometheus.GaugeValue, seconds(e.notBefore), e.project, e.certificate, e.environment)
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, e.project, e.certificate, e.environment, e.subject, e.thumbprint)
	}
	if s.seen > 0 || !s.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.certificates, prometheus.GaugeValue, float64(s.seen))
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.GaugeValue, float64(s.dropped))
	}
	if !s.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, seconds(s.lastSuccess))
	}
}

// set replaces the snapshot.
func (c *collector) set(s snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snap = s
}

// get returns the snapshot.
func (c *collector) get() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

func seconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// counters are the inventory's own metrics, exported by every replica that
// runs it, holder or not.
type counters struct {
	errors   *prometheus.CounterVec
	events   *prometheus.CounterVec
	held     prometheus.Gauge
	interval prometheus.Gauge
}

func newCounters(reg prometheus.Registerer, interval time.Duration) (*counters, error) {
	c := &counters{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiops_inventory_errors_total",
			Help: "Inventory failures, by reason: unauthorized, project_not_found, unavailable, refused, invalid_response, publish, lease.",
		}, []string{"reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiops_inventory_events_total",
			Help: "Expiry events published, by outcome: published, or duplicate (already published that day, by this replica or another).",
		}, []string{"outcome"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apiops_inventory_lease_held",
			Help: "1 while this replica holds the inventory lease (and so exports the certificate series), else 0.",
		}),
		interval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apiops_inventory_interval_seconds",
			Help: "The time between inventory rounds, as configured; the staleness alert reads it.",
		}),
	}
	for _, r := range errorReasons {
		c.errors.WithLabelValues(r)
	}
	c.events.WithLabelValues("published")
	c.events.WithLabelValues("duplicate")
	c.interval.Set(interval.Seconds())
	for _, col := range []prometheus.Collector{c.errors, c.events, c.held, c.interval} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("inventory: register metrics: %w", err)
		}
	}
	return c, nil
}
