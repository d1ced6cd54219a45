package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestWorkerScripts runs testdata/worker/*.txtar: the worker binary, built
// as the image builds it (no dev tag), as an operator types it. Its flags,
// help and configuration errors are the CLI findings of issue 21 that are
// the worker's, kept beside enqueue's.
func TestWorkerScripts(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "worker"), "../worker")
	// Tags given to the test run (-tags dev in CI) must not reach the
	// build: the scripts show the production binary.
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build worker: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/worker",
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", bin+string(os.PathListSeparator)+e.Getenv("PATH"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"exits": exits},
	})
}
