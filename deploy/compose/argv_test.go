package compose_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// secretName matches the name of a flag or environment variable that may hold a secret.
var secretName = regexp.MustCompile(`(?i)password|token|secret|nkey|seed|creds|credential`)

// composeService is the part of a Compose service that can carry a secret.
type composeService struct {
	Command     any            `yaml:"command"`
	Entrypoint  any            `yaml:"entrypoint"`
	Environment map[string]any `yaml:"environment"`
	Secrets     []string       `yaml:"secrets"`
}

// TestComposeKeepsSecretsOutOfArgumentsAndEnvironment: an argument shows in ps
// and /proc/<pid>/cmdline, an environment variable in /proc/<pid>/environ and
// docker inspect. In docker-compose.yml every secret (each file of secrets/)
// reaches its service as a file under /run/secrets: no argument names a
// secret-bearing flag that is not a -file one, no secret-named variable holds
// anything but a /run/secrets path, and no secret's value appears in either.
func TestComposeKeepsSecretsOutOfArgumentsAndEnvironment(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]composeService `yaml:"services"`
		Secrets  map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	var values []string
	for name, s := range file.Secrets {
		b, err := os.ReadFile(filepath.Clean(s.File))
		if err != nil {
			t.Fatalf("secret %s: %v", name, err)
		}
		values = append(values, strings.TrimSpace(string(b)))
	}
	if len(file.Services) < 5 || len(values) < 4 {
		t.Fatalf("%d services, %d secrets: has the file's shape changed?", len(file.Services), len(values))
	}
	leaks := func(where, text string) {
		for _, v := range values {
			if strings.Contains(text, v) {
				t.Errorf("%s holds the value of a secret", where)
			}
		}
	}
	for name, svc := range file.Services {
		for _, ref := range svc.Secrets {
			if _, ok := file.Secrets[ref]; !ok {
				t.Errorf("service %s: secret %s is not defined", name, ref)
			}
		}
		for i, arg := range append(words(svc.Entrypoint), words(svc.Command)...) {
			flag, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
			if strings.HasPrefix(arg, "-") && secretName.MatchString(flag) && !strings.HasSuffix(flag, "-file") {
				t.Errorf("service %s: argument %d %q takes a secret value", name, i, arg)
			}
			leaks("service "+name+": argument "+arg, arg)
		}
		for k, v := range svc.Environment {
			value, _ := v.(string)
			if secretName.MatchString(k) && !strings.HasPrefix(value, "/run/secrets/") {
				t.Errorf("service %s: %s=%q, want a file under /run/secrets", name, k, value)
			}
			leaks("service "+name+": "+k, value)
		}
	}
}

// words returns a Compose command or entrypoint as its arguments: a list as
// it is, a string split at white space.
func words(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, w := range v {
			s, _ := w.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}
