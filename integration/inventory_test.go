package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"

	"github.com/apiops-worker/apiops-worker/inventory"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestInventoryHandsOverWhenItsHolderDies runs two workers with the certificate inventory
// on against a simulator holding certificates that expire in 5, 20 and 400 days, in two
// environments. Only the lease holder exports and publishes. When its container is killed
// (SIGKILL: no release, the lease must expire), the other exports within one lease, and
// the handover adds no expiry event: the events stream keeps one per certificate,
// environment and thumbprint.
func TestInventoryHandsOverWhenItsHolderDies(t *testing.T) {
	const lease = 3 * time.Second
	nw := startNetwork(t)
	node := startNATS(t, nw, "nats-1")
	sim := startSeededSim(t, nw, []seedProject{{Name: "Shop", Environments: []string{"production", "staging"}}},
		"--seed-expiring", "5,20,400")
	inventoryEnv := map[string]string{
		"APINIZER_INVENTORY_PROJECTS": "Shop",
		"APINIZER_INVENTORY_INTERVAL": "1s",
		"APINIZER_INVENTORY_LEASE":    lease.String(),
	}
	workers := map[string]testcontainers.Container{}
	for _, name := range []string{"worker-a", "worker-b"} {
		workers[name] = startWorker(t, nw, sim, workerSpec{Name: name, NATSURL: node.NetworkURL, Env: inventoryEnv})
	}
	js := jetStream(t, node.HostURL(t))

	// Three certificates in two environments: six pairs, of which four (5 and 20 days)
	// are within the default 720h expiry warning.
	const pairs, expiring = 6, 4
	holder := func() string {
		for name, c := range workers {
			if m, err := scrape(c); err == nil && m.value("apiops_inventory_lease_held") == 1 {
				return name
			}
		}
		return ""
	}
	status := func() string {
		var b strings.Builder
		for _, name := range slices.Sorted(maps.Keys(workers)) {
			m, err := scrape(workers[name])
			fmt.Fprintf(&b, "%s: held=%v certificate series=%d scrape error=%v; ", name, m.value("apiops_inventory_lease_held"),
				m.count("apiops_certificate_not_after_timestamp_seconds"), err)
		}
		fmt.Fprintf(&b, "events=%d", len(expiryEvents(t, js)))
		return b.String()
	}
	waitFor(t, 30*time.Second, "one worker to hold the lease and export every pair", func() bool {
		h := holder()
		if h == "" {
			return false
		}
		m, err := scrape(workers[h])
		return err == nil && m.count("apiops_certificate_not_after_timestamp_seconds") == pairs
	}, status)
	waitFor(t, 30*time.Second, "the holder's expiry events", func() bool { return len(expiryEvents(t, js)) >= expiring }, status)

	first := holder()
	other := "worker-a"
	if first == other {
		other = "worker-b"
	}
	m, err := scrape(workers[other])
	if err != nil {
		t.Fatal(err)
	}
	if m.value("apiops_inventory_lease_held") != 0 || m.count("apiops_certificate_not_after_timestamp_seconds") != 0 {
		t.Errorf("%s, not holding the lease, exports held=%v and %d certificate series; want 0 and none",
			other, m.value("apiops_inventory_lease_held"), m.count("apiops_certificate_not_after_timestamp_seconds"))
	}

	killContainer(t, workers[first])
	killed := time.Now()
	took := waitFor(t, 3*lease, other+" to take the lease over and export every pair", func() bool {
		m, err := scrape(workers[other])
		return err == nil && m.value("apiops_inventory_lease_held") == 1 &&
			m.count("apiops_certificate_not_after_timestamp_seconds") == pairs
	}, status)
	measure(t, "lease=%s takeover_and_export=%s", lease, took.Round(time.Millisecond))
	if took > lease {
		t.Errorf("%s exported %s after %s was killed, want within one lease (%s)", other, took.Round(time.Millisecond), first, lease)
	}

	// The new holder sends every expiring pair's event again (it does not know what its
	// predecessor sent); the stream drops them as that day's duplicates.
	waitFor(t, 10*time.Second, other+"'s republished events to be found duplicates", func() bool {
		m, err := scrape(workers[other])
		return err == nil && m.value(`apiops_inventory_events_total{outcome="duplicate"}`) >= expiring
	}, status)
	if m, _ := scrape(workers[other]); m.value(`apiops_inventory_events_total{outcome="published"}`) != 0 {
		t.Errorf("%s published %v new events after the handover, want 0: its predecessor had sent them",
			other, m.value(`apiops_inventory_events_total{outcome="published"}`))
	}
	perKey := map[string]int{}
	for _, e := range expiryEvents(t, js) {
		perKey[fmt.Sprintf("%s/%s/%s/%s", e.ProjectName, e.CertificateName, e.EnvironmentName, e.SHA1Thumbprint)]++
		if want := map[string]int{"expires-in-5d": 5, "expires-in-20d": 20}[e.CertificateName]; e.DaysLeft != want {
			t.Errorf("event of %s in %s: daysLeft %d, want %d", e.CertificateName, e.EnvironmentName, e.DaysLeft, want)
		}
	}
	if len(perKey) != expiring {
		t.Errorf("events for %d certificate/environment/thumbprint keys, want %d: %v", len(perKey), expiring, perKey)
	}
	for key, n := range perKey {
		if n != 1 {
			t.Errorf("%d events for %s across the handover, want 1", n, key)
		}
	}
	t.Logf("handover after %s: %s", time.Since(killed).Round(time.Millisecond), status())

	// A producer lists them from NATS alone: no Apinizer URL or token.
	code, out := runEnqueue(t, nw, nil, "certificates", "expiring", "--within", "30d", "--nats-url", node.NetworkURL)
	if code != 0 {
		t.Fatalf("enqueue certificates expiring: exit status %d, want 0; output:\n%s", code, out)
	}
	for _, want := range []string{"expires-in-5d", "expires-in-20d"} {
		if n := strings.Count(out, " "+want+" "); n != 2 {
			t.Errorf("enqueue certificates expiring lists %s %d times, want once per environment; output:\n%s", want, n, out)
		}
	}
	if strings.Contains(out, "expires-in-400d") {
		t.Errorf("enqueue certificates expiring --within 30d lists the 400-day certificate; output:\n%s", out)
	}
}

// expiryEvents reads every expiry event on the events stream.
func expiryEvents(t testing.TB, js jetstream.JetStream) []inventory.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s, err := js.Stream(ctx, streams.Events)
	if err != nil {
		return nil // not provisioned yet
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", streams.Events, err)
	}
	var out []inventory.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
		if m.Subject != streams.SubjectCertificateExpiring {
			continue
		}
		var e inventory.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("event %d %s: %v", seq, m.Data, err)
		}
		out = append(out, e)
	}
	return out
}

// metricsPage is one scrape of a worker's /metrics: series as exposed
// (name{labels}) → value.
type metricsPage map[string]float64

// value is the series' value, 0 when absent.
func (m metricsPage) value(series string) float64 { return m[series] }

// count is the number of series of metric name.
func (m metricsPage) count(name string) int {
	n := 0
	for s := range m {
		if strings.HasPrefix(s, name+"{") {
			n++
		}
	}
	return n
}

// scrape reads c's /metrics in the text format.
func scrape(c testcontainers.Container) (metricsPage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	base, err := c.PortEndpoint(ctx, workerPort, "http")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	page := metricsPage{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("GET /metrics: line %q: %w", line, err)
		}
		page[line[:i]] = v
	}
	return page, sc.Err()
}
