package grafana_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// What an operator opening the dashboard needs first (issue 21): the
// per-environment deployment failures in the first row, the alert levels
// drawn, a way to the runbook from each panel, and rare dead letters shown
// as counts.

// firstRow returns the panels between the first row and the second.
func firstRow(t *testing.T, d dashboard) []panel {
	t.Helper()
	var rows []int
	for i, p := range d.Panels {
		if p.Type == "row" {
			rows = append(rows, i)
		}
	}
	if len(rows) < 2 || rows[0] != 0 {
		t.Fatalf("rows at %v, want the dashboard to start with a row and have another", rows)
	}
	return d.Panels[1:rows[1]]
}

func TestTheFirstRowShowsDeploymentFailuresPerEnvironment(t *testing.T) {
	t.Parallel()
	d, _ := read(t)
	for _, p := range firstRow(t, d) {
		if p.Title == "Deployment failure rate by environment" {
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, "by (environment)") {
					t.Errorf("query %s is not per environment: %s", tg.RefID, tg.Expr)
				}
			}
			return
		}
	}
	t.Errorf("the first row does not hold \"Deployment failure rate by environment\"")
}

// alertBlock returns the text of the alert named name in rules.yml.
func alertBlock(t *testing.T, name string) string {
	t.Helper()
	rules, err := os.ReadFile("../prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(rules), "- alert: "+name+"\n")
	if !ok {
		t.Fatalf("rules.yml has no alert %s", name)
	}
	block, _, _ := strings.Cut(after, "- alert: ")
	return block
}

func TestPanelsDrawTheirAlertsThresholds(t *testing.T) {
	t.Parallel()
	d, _ := read(t)
	panels := map[string]panel{}
	for _, p := range all(d.Panels) {
		panels[p.Title] = p
	}
	tests := []struct {
		title, alert string
		// comparison is what the alert's expression compares with; value
		// the threshold the panel draws for it.
		comparison string
		value      float64
	}{
		{"Deployment failure rate by environment", "ApiopsEnvironmentDeploymentFailures", "> 0.1", 0.1},
		{"Consumer backlog", "ApiopsBacklogGrowing", "> 100", 100},
		{"Backlog", "ApiopsBacklogGrowing", "> 100", 100},
		{"Dead letters by reason", "ApiopsDeadLettersGrowing", "> 0", 1},
		{"Dead letters (24h)", "ApiopsDeadLettersGrowing", "> 0", 1},
		{"Apinizer auth failures by reason", "ApinizerTokenRejected", "> 0", 1},
		{"Circuit breaker", "ApiopsCircuitBreakerOpen", "== 2", 2},
	}
	for _, tc := range tests {
		t.Run(tc.title+" draws "+tc.alert+"'s threshold", func(t *testing.T) {
			t.Parallel()
			if block := alertBlock(t, tc.alert); !strings.Contains(block, tc.comparison) {
				t.Fatalf("alert %s no longer compares %q:\n%s", tc.alert, tc.comparison, block)
			}
			p, ok := panels[tc.title]
			if !ok {
				t.Fatalf("no panel %q", tc.title)
			}
			found := false
			for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
				if s.Value != nil && *s.Value == tc.value && s.Color != "green" {
					found = true
				}
			}
			if !found {
				t.Errorf("no threshold step at %v: %+v", tc.value, p.FieldConfig.Defaults.Thresholds.Steps)
			}
			if mode := p.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode; p.Type == "timeseries" && (mode == "" || mode == "off") {
				t.Errorf("thresholdsStyle %q: the threshold is not drawn", mode)
			}
		})
	}
}

func TestEveryPanelLinksItsRunbook(t *testing.T) {
	t.Parallel()
	d, _ := read(t)
	docs, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	// GitHub's anchors: headings lower-cased, spaces to dashes, other
	// punctuation dropped.
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 -]`)
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(docs), -1) {
		anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")] = true
	}
	link := regexp.MustCompile(`^https://github\.com/apiops-worker/apiops-worker/blob/main/docs/metrics\.md#([a-z0-9-]+)$`)
	for _, p := range all(d.Panels) {
		if p.Type == "row" {
			continue
		}
		t.Run(p.Title, func(t *testing.T) {
			if len(p.Links) != 1 {
				t.Fatalf("%d links, want one to its runbook", len(p.Links))
			}
			m := link.FindStringSubmatch(p.Links[0].URL)
			if m == nil {
				t.Fatalf("link %q does not point into docs/metrics.md", p.Links[0].URL)
			}
			if !anchors[m[1]] {
				t.Errorf("docs/metrics.md has no section #%s", m[1])
			}
			if !strings.Contains(p.Description, "docs/metrics.md#"+m[1]) {
				t.Errorf("the description does not name docs/metrics.md#%s: %q", m[1], p.Description)
			}
			if alert, ok := strings.CutPrefix(p.Links[0].Title, "Runbook: "); ok && strings.ToLower(alert) != m[1] {
				t.Errorf("link %q goes to #%s", p.Links[0].Title, m[1])
			}
		})
	}
}

func TestDeadLettersAreCountedNotRated(t *testing.T) {
	t.Parallel()
	d, _ := read(t)
	rate := regexp.MustCompile(`\b(i?rate)\(`)
	found := 0
	for _, p := range all(d.Panels) {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "apiops_dead_letters_total") {
				continue
			}
			found++
			if rate.MatchString(tg.Expr) {
				t.Errorf("%s: a per-second rate of dead letters: %s", p.Title, tg.Expr)
			}
			if !strings.Contains(tg.Expr, "increase(") {
				t.Errorf("%s: dead letters not counted with increase(): %s", p.Title, tg.Expr)
			}
			if p.Title == "Dead letters by reason" && !strings.Contains(tg.Expr, "[$__range]") {
				t.Errorf("%s: not counted over the dashboard's range: %s", p.Title, tg.Expr)
			}
		}
	}
	if found < 2 {
		t.Errorf("%d dead-letter queries, want the overview's and the reasons'", found)
	}
}
