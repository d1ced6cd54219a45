package prometheus_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ruleFile is the part of rules.yml the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	data, err := os.ReadFile("rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("rules.yml: %v", err)
	}
	return f
}

// ruleSource maps every record and alert name in rules.yml to its expression.
func ruleSource(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			out[r.Record+r.Alert] = r.Expr
		}
	}
	return out
}

// TestEveryAlertIsDocumentedAndUnitTested holds rules.yml to its conventions and checks that
// rules_test.yml makes every alert both fire and stay silent; promtool then runs those tests
// (make test-rules).
func TestEveryAlertIsDocumentedAndUnitTested(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("rules_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatalf("rules_test.yml: %v", err)
	}
	if !slices.Equal(tests.RuleFiles, []string{"rules.yml"}) {
		t.Errorf("rules_test.yml tests rule files %v, want [rules.yml]", tests.RuleFiles)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	docs, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}

	alerts := 0
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				if !strings.Contains(r.Record, ":") {
					t.Errorf("recording rule %s: want a level:metric:operations name", r.Record)
				}
				continue
			}
			alerts++
			t.Run(r.Alert+" has a severity, annotations, a runbook and tests", func(t *testing.T) {
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("severity %q, want critical or warning", s)
				}
				for _, a := range []string{"summary", "description", "runbook"} {
					if r.Annotations[a] == "" {
						t.Errorf("no %s annotation", a)
					}
				}
				anchor := "docs/metrics.md#" + strings.ToLower(r.Alert)
				if !strings.HasPrefix(r.Annotations["runbook"], anchor) {
					t.Errorf("runbook %q, want it to start with %s", r.Annotations["runbook"], anchor)
				}
				if !strings.Contains(string(docs), "### "+r.Alert+"\n") {
					t.Errorf("docs/metrics.md has no section ### %s", r.Alert)
				}
				if !fires[r.Alert] {
					t.Error("rules_test.yml never expects it to fire")
				}
				if !silent[r.Alert] {
					t.Error("rules_test.yml never expects it to stay silent")
				}
			})
		}
	}
	if alerts == 0 {
		t.Fatal("rules.yml has no alerts")
	}
}
