package inventory_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/inventory"
)

const day = 24 * time.Hour

func TestARoundExportsEachEnvironmentsDates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddProject("Shop", "production", "staging")
	b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-10*day), b.now.Add(5*day))
	stagingThumb := b.deploy(t, "Shop", "api-tls", "staging", b.now.Add(-1*day), b.now.Add(400*day))
	b.deploy(t, "Shop", "client-ca", "production", b.now.Add(-100*day), b.now.Add(20*day))
	r := b.start(t, inventory.Config{Projects: []string{"Shop"}})
	poll.Until(t, 10*time.Second, "the first round's success", func() bool { _, ok := r.value(t, lastSuccess); return ok })

	got := r.series(t)
	want := map[string]float64{
		notAfter("Shop", "api-tls", "production"):    float64(b.now.Add(5 * day).Unix()),
		notBefore("Shop", "api-tls", "production"):   float64(b.now.Add(-10 * day).Unix()),
		notAfter("Shop", "api-tls", "staging"):       float64(b.now.Add(400 * day).Unix()),
		notBefore("Shop", "api-tls", "staging"):      float64(b.now.Add(-1 * day).Unix()),
		notAfter("Shop", "client-ca", "production"):  float64(b.now.Add(20 * day).Unix()),
		notBefore("Shop", "client-ca", "production"): float64(b.now.Add(-100 * day).Unix()),
		"apiops_inventory_certificates{}":            3,
		"apiops_inventory_dropped_certificates{}":    0,
		"apiops_inventory_lease_held{}":              1,
		"apiops_inventory_interval_seconds{}":        600,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	info := `apiops_certificate_info{certificate="api-tls",environment="staging",project="Shop",sha1_thumbprint="` + stagingThumb + `",subject="CN=api-tls.staging.example"}`
	if got[info] != 1 {
		t.Errorf("%s = %v, want 1; info series: %v", info, got[info], r.certificateSeries(t, "apiops_certificate_info"))
	}
	problems, err := testutil.GatherAndLint(r.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if ls := got[lastSuccess]; ls < float64(b.now.Unix()) || ls > float64(time.Now().Unix()+1) {
		t.Errorf("last success %v, want the round's time (after %d)", ls, b.now.Unix())
	}
}

func TestSeriesOfADeletedCertificateDisappear(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddProject("Shop", "production")
	b.deploy(t, "Shop", "kept", "production", b.now.Add(-day), b.now.Add(30*day))
	b.deploy(t, "Shop", "deleted", "production", b.now.Add(-day), b.now.Add(30*day))
	r := b.start(t, inventory.Config{Projects: []string{"Shop"}, Interval: time.Second})
	poll.Until(t, 10*time.Second, "both certificates exported", func() bool {
		return len(r.certificateSeries(t, "apiops_certificate_not_after_timestamp_seconds")) == 2
	})

	b.sim.RemoveCertificate("Shop", "deleted")
	poll.Until(t, 10*time.Second, "the deleted certificate's series to go", func() bool {
		return len(r.certificateSeries(t, "apiops_certificate_not_after_timestamp_seconds")) == 1
	})
	for _, metric := range []string{"apiops_certificate_not_after_timestamp_seconds", "apiops_certificate_not_before_timestamp_seconds"} {
		got := r.certificateSeries(t, metric)
		want := []string{metric + `{certificate="kept",environment="production",project="Shop"}`}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s series (-want +got):\n%s", metric, diff)
		}
	}
	if len(r.certificateSeries(t, "apiops_certificate_info")) != 1 {
		t.Errorf("info series %v, want only kept's", r.certificateSeries(t, "apiops_certificate_info"))
	}
}

func TestAProjectThatFailsKeepsItsSeriesAndTheRoundIsNoSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddProject("Shop", "production")
	b.deploy(t, "Shop", "api-tls", "production", b.now.Add(-day), b.now.Add(30*day))
	r := b.start(t, inventory.Config{Projects: []string{"Shop", "Missing"}, Interval: time.Second})
	poll.Until(t, 10*time.Second, "a round that found Missing missing", func() bool {
		v, _ := r.value(t, `apiops_inventory_errors_total{reason="project_not_found"}`)
		return v >= 1
	})
	if _, ok := r.value(t, lastSuccess); ok {
		t.Error("last success exported though a project could not be listed")
	}
	if _, ok := r.value(t, notAfter("Shop", "api-tls", "production")); !ok {
		t.Error("Shop's certificate not exported though Shop was listed")
	}

	b.sim.AddFault(apinizertest.Fault{Method: http.MethodGet, PathPrefix: "/apiops/projects/Shop/certificates/", Times: 1000,
		Reply: apinizertest.FailureReply(http.StatusInternalServerError, "An unexpected error occurred")})
	poll.Until(t, 20*time.Second, "a round where Shop failed", func() bool {
		v, _ := r.value(t, `apiops_inventory_errors_total{reason="unavailable"}`)
		return v >= 1
	})
	if _, ok := r.value(t, notAfter("Shop", "api-tls", "production")); !ok {
		t.Error("Shop's series dropped when listing it failed; want them kept until a list says otherwise")
	}
}

func TestTheSeriesCapKeepsTheSoonestExpiring(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.AddProject("Shop", "production")
	for i, days := range []int{50, 10, 400, 3, 30} {
		b.deploy(t, "Shop", "cert-"+string(rune('a'+i)), "production", b.now.Add(-day), b.now.Add(time.Duration(days)*day))
	}
	r := b.start(t, inventory.Config{Projects: []string{"Shop"}, MaxSeries: 3})
	poll.Until(t, 10*time.Second, "the first round's success", func() bool { _, ok := r.value(t, lastSuccess); return ok })

	got := r.certificateSeries(t, "apiops_certificate_not_after_timestamp_seconds")
	want := []string{notAfter("Shop", "cert-b", "production"), notAfter("Shop", "cert-d", "production"), notAfter("Shop", "cert-e", "production")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exported (-want +got): want the 3, 10 and 30 day ones\n%s", diff)
	}
	if v, _ := r.value(t, "apiops_inventory_dropped_certificates{}"); v != 2 {
		t.Errorf("dropped = %v, want 2", v)
	}
	if v, _ := r.value(t, "apiops_inventory_certificates{}"); v != 5 {
		t.Errorf("certificates = %v, want 5 (all seen)", v)
	}
}

func TestCallsArePacedAtTheRequestRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const projects, rate = 15, 20.0
	for i := range projects {
		p := "Project" + string(rune('A'+i))
		b.sim.AddProject(p, "production")
		b.deploy(t, p, "tls", "production", b.now.Add(-day), b.now.Add(100*day))
	}
	r := b.start(t, inventory.Config{Projects: []string{inventory.AllProjects}, RequestRate: rate})
	poll.Until(t, 20*time.Second, "the first round's success", func() bool { _, ok := r.value(t, lastSuccess); return ok })

	reqs := b.sim.Requests()
	if len(reqs) != projects+1 {
		t.Fatalf("%d requests, want %d: the project list and one list per project", len(reqs), projects+1)
	}
	span := reqs[len(reqs)-1].Start.Sub(reqs[0].Start)
	measured := float64(len(reqs)-1) / span.Seconds()
	t.Logf("%d requests in %s: %.1f requests/s (limit %.0f/s)", len(reqs), span, measured, rate)
	if measured > rate*1.1 {
		t.Errorf("%.1f requests/s, want at most %.0f/s (+10%%)", measured, rate)
	}
	if v, _ := r.value(t, "apiops_inventory_certificates{}"); v != projects {
		t.Errorf("certificates = %v, want %d", v, projects)
	}
}

func TestNewRefusesABadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  inventory.Config
	}{
		{"no projects is refused", inventory.Config{}},
		{"every project beside named ones is refused", inventory.Config{Projects: []string{"*", "Shop"}}},
		{"a project name with spaces around it is refused", inventory.Config{Projects: []string{" Shop"}}},
		{"a negative request rate is refused", inventory.Config{Projects: []string{"Shop"}, RequestRate: -1}},
		{"a negative series cap is refused", inventory.Config{Projects: []string{"Shop"}, MaxSeries: -1}},
		{"an interval under a second is refused", inventory.Config{Projects: []string{"Shop"}, Interval: time.Millisecond}},
		{"a lease under 100ms is refused", inventory.Config{Projects: []string{"Shop"}, Lease: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := inventory.New(tt.cfg, nil, nil, nil, nil); !errors.Is(err, inventory.ErrInvalidConfig) {
				t.Errorf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
