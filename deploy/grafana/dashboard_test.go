// Package grafana_test checks that apiops-worker.json imports as is into any Grafana with a
// Prometheus datasource. deploy/prometheus/e2e_test.go runs its queries against a real
// Prometheus. It holds tests only.
package grafana_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	Links       []struct {
		Title string `json:"title"`
		URL   string `json:"url"`
	} `json:"links"`
	FieldConfig struct {
		Defaults struct {
			Thresholds struct {
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
			Custom struct {
				ThresholdsStyle struct {
					Mode string `json:"mode"`
				} `json:"thresholdsStyle"`
			} `json:"custom"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Datasource *datasource `json:"datasource"`
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboard struct {
	ID            *int    `json:"id"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string      `json:"name"`
			Type       string      `json:"type"`
			Query      any         `json:"query"`
			Definition string      `json:"definition"`
			Datasource *datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func read(t *testing.T) (dashboard, []byte) {
	t.Helper()
	data, err := os.ReadFile("apiops-worker.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("apiops-worker.json is not valid JSON: %v", err)
	}
	return d, data
}

// all returns every panel, rows' panels included.
func all(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, all(p.Panels)...)
	}
	return out
}

var ourDatasource = &datasource{Type: "prometheus", UID: "${datasource}"}

func TestDashboardIsTemplatedOnDatasourceJobInstanceAndEnvironment(t *testing.T) {
	t.Parallel()
	d, raw := read(t)
	if d.ID != nil || d.UID != "apiops-worker" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("id %v, uid %q, title %q, schemaVersion %d: want a null id (import assigns one), uid apiops-worker, a title, schemaVersion 36 or later",
			d.ID, d.UID, d.Title, d.SchemaVersion)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name+":"+v.Type)
		switch v.Type {
		case "datasource":
			if v.Query != "prometheus" {
				t.Errorf("variable %s offers %v datasources, want prometheus", v.Name, v.Query)
			}
		case "query":
			if diff := cmp.Diff(ourDatasource, v.Datasource); diff != "" {
				t.Errorf("variable %s datasource (-want +got):\n%s", v.Name, diff)
			}
			if !strings.HasPrefix(v.Definition, "label_values(") {
				t.Errorf("variable %s: %q, want label_values(...)", v.Name, v.Definition)
			}
		}
	}
	want := []string{"datasource:datasource", "job:query", "instance:query", "environment:query"}
	if diff := cmp.Diff(want, vars); diff != "" {
		t.Errorf("template variables (-want +got):\n%s", diff)
	}
	// No datasource UID is written into the file: only the variable, the dashboard's own uid
	// and Grafana's built-in annotation source.
	for _, m := range regexp.MustCompile(`"uid":\s*"([^"]*)"`).FindAllStringSubmatch(string(raw), -1) {
		if !slices.Contains([]string{"${datasource}", "apiops-worker", "-- Grafana --"}, m[1]) {
			t.Errorf("hard-coded uid %q", m[1])
		}
	}
}

func TestEveryPanelQueriesTheSelectedDatasourceJobAndInstance(t *testing.T) {
	t.Parallel()
	d, _ := read(t)
	selector := regexp.MustCompile(`\{[^}]*\}`)
	ids := map[int]string{}
	queries := 0
	for _, p := range all(d.Panels) {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		t.Run(p.Title, func(t *testing.T) {
			if diff := cmp.Diff(ourDatasource, p.Datasource); diff != "" {
				t.Errorf("panel datasource (-want +got):\n%s", diff)
			}
			if len(p.Targets) == 0 {
				t.Fatal("no queries")
			}
			for _, tg := range p.Targets {
				queries++
				if diff := cmp.Diff(ourDatasource, tg.Datasource); diff != "" {
					t.Errorf("query %s datasource (-want +got):\n%s", tg.RefID, diff)
				}
				sels := selector.FindAllString(tg.Expr, -1)
				if len(sels) == 0 {
					t.Errorf("query %s selects no series: %s", tg.RefID, tg.Expr)
				}
				for _, s := range sels {
					if !strings.Contains(s, `job=~"$job"`) || !strings.Contains(s, `instance=~"$instance"`) {
						t.Errorf("query %s: selector %s does not filter on $job and $instance", tg.RefID, s)
					}
					if strings.Contains(tg.Expr, "apiops_environment_deployments") && !strings.Contains(s, `environment=~"$environment"`) {
						t.Errorf("query %s: selector %s does not filter on $environment", tg.RefID, s)
					}
				}
			}
		})
	}
	if queries == 0 {
		t.Fatal("no queries at all")
	}
}

func TestDashboardHasThePanelsTheRunbookNames(t *testing.T) {
	t.Parallel()
	d, _ := read(t)
	var titles []string
	for _, p := range all(d.Panels) {
		titles = append(titles, p.Title)
	}
	// docs/metrics.md refers to these by title.
	for _, want := range []string{
		"Jobs finished by status", "Deployment failure rate by environment", "Job duration",
		"Apinizer request latency p99 by code", "Retries by reason", "Jobs in flight",
		"Consumer backlog", "Dead letters by reason", "Circuit breaker", "Circuit breaker state", "Version",
		"Apinizer auth failures by reason", "Soonest-expiring certificates", "Expired certificates",
		"Expiring within 14 days", "Inventory age", "Inventory errors by reason",
	} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q", want)
		}
	}
}
