package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBuildLinksTheDevelopmentStackOnlyWithTheDevTag lists the packages the
// worker is built from, as the image's build does (no tags) and as make run
// does (-tags dev): only the latter may hold the embedded NATS server and the
// Apinizer simulator.
func TestBuildLinksTheDevelopmentStackOnlyWithTheDevTag(t *testing.T) {
	t.Parallel()
	devOnly := []string{"github.com/nats-io/nats-server/v2/server", "github.com/apiops-worker/apiops-worker/executor/apinizertest"}
	for _, tc := range []struct {
		name string
		tags []string
		want bool
	}{
		{"the production build", nil, false},
		{"the dev build", []string{"-tags", "dev"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("go", slices.Concat([]string{"list", "-deps"}, tc.tags, []string{"."})...)
			// Tags given to the test run through GOFLAGS must not change
			// what is listed.
			cmd.Env = append(os.Environ(), "GOFLAGS=")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			deps := strings.Fields(string(out))
			for _, pkg := range devOnly {
				if got := slices.Contains(deps, pkg); got != tc.want {
					t.Errorf("links %s: %t, want %t", pkg, got, tc.want)
				}
			}
		})
	}
}
