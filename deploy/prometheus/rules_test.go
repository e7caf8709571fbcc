// Package prometheus_test checks deploy/prometheus/alerts.yaml with
// promtool: the rules load, their unit tests (alerts_test.yaml) pass,
// every alert has a case where it fires and one where it must not, and
// the tests catch a broken alert.
package prometheus_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/qodwatch/qodwatch/deploy/deploytest"
)

const (
	rulesFile = "alerts.yaml"
	testsFile = "alerts_test.yaml"
)

func TestAlertRulesPassTheirUnitTests(t *testing.T) {
	promtool := deploytest.RequireTool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", testsFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
		t.Logf("promtool %v:\n%s", args, out)
	}
}

// TestEveryAlertIsTested: each alert of alerts.yaml is evaluated in
// alerts_test.yaml at a time it must fire and at a time it must not, and
// no test names an alert that does not exist.
func TestEveryAlertIsTested(t *testing.T) {
	alerts := alertNames(t, readYAML(t, rulesFile))
	var tests struct {
		Tests []struct {
			Name  string
			Cases []struct {
				Alert     string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := readYAML(t, testsFile).Decode(&tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, c := range tc.Cases {
			if !slices.Contains(alerts, c.Alert) {
				t.Errorf("test %q names alert %q, which %s does not have", tc.Name, c.Alert, rulesFile)
			}
			if len(c.ExpAlerts) > 0 {
				fires[c.Alert] = true
			} else {
				quiet[c.Alert] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("%s: no test where it fires", a)
		}
		if !quiet[a] {
			t.Errorf("%s: no test where it must not fire", a)
		}
	}
}

// TestBrokenAlertsFailTheUnitTests breaks every alert's expression in a
// copy of alerts.yaml, once so that it never fires and once so that it
// always does, and wants promtool to report each alert failing: a test
// that passes whatever the rule says tests nothing.
func TestBrokenAlertsFailTheUnitTests(t *testing.T) {
	promtool := deploytest.RequireTool(t, "promtool")
	alerts := alertNames(t, readYAML(t, rulesFile))
	tests, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	failed := regexp.MustCompile(`alertname: (\w+),`)
	for _, broken := range []struct{ name, expr string }{
		{"never fires", "vector(1) == 0"},
		{"always fires", "vector(1)"},
	} {
		t.Run(broken.name, func(t *testing.T) {
			doc := readYAML(t, rulesFile)
			for _, rule := range rules(t, doc) {
				setKey(rule, "expr", broken.expr)
			}
			dir := t.TempDir()
			out, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, rulesFile), out, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, testsFile), tests, 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, testsFile)).CombinedOutput()
			if err == nil {
				t.Fatalf("promtool test rules passed with every alert broken (%s):\n%s", broken.expr, res)
			}
			var caught []string
			for _, m := range failed.FindAllStringSubmatch(string(res), -1) {
				caught = append(caught, m[1])
			}
			for _, a := range alerts {
				if !slices.Contains(caught, a) {
					t.Errorf("%s with expr %q: its tests still pass", a, broken.expr)
				}
			}
			if t.Failed() {
				t.Logf("promtool:\n%s", res)
			}
		})
	}
}

func readYAML(t *testing.T, name string) *yaml.Node {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &doc
}

// rules are the mapping nodes of the alerting rules of every group.
func rules(t *testing.T, doc *yaml.Node) []*yaml.Node {
	t.Helper()
	var out []*yaml.Node
	groups := key(doc.Content[0], "groups")
	if groups == nil {
		t.Fatalf("%s: no groups", rulesFile)
	}
	for _, g := range groups.Content {
		rs := key(g, "rules")
		if rs == nil {
			continue
		}
		for _, r := range rs.Content {
			if key(r, "alert") != nil {
				out = append(out, r)
			}
		}
	}
	return out
}

func alertNames(t *testing.T, doc *yaml.Node) []string {
	t.Helper()
	var names []string
	for _, r := range rules(t, doc) {
		names = append(names, key(r, "alert").Value)
	}
	if len(names) == 0 {
		t.Fatalf("%s: no alerts", rulesFile)
	}
	return names
}

func key(m *yaml.Node, k string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return nil
}

func setKey(m *yaml.Node, k, v string) {
	n := key(m, k)
	n.Kind, n.Style, n.Tag, n.Value = yaml.ScalarNode, 0, "!!str", v
}
