//go:build dev

package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/inventory"
)

// example is one command of the README: a line of an sh block that starts
// with "enqueue ", its continuation lines joined.
type example struct {
	line   int // where it starts in the README
	cmd    string
	status int // the exit status the README gives it: 0, or "# exits N"
}

// exitsMarker, in an example's trailing comment, is the exit status it
// shows when that is not 0.
var exitsMarker = regexp.MustCompile(`\bexits (\d+)\b`)

// readmeExamples extracts the enqueue commands from the README's sh blocks.
func readmeExamples(readme string) []example {
	var (
		out     []example
		inSh    bool
		pending *example
	)
	sc := bufio.NewScanner(strings.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if fence, ok := strings.CutPrefix(strings.TrimSpace(line), "```"); ok {
			inSh = !inSh && (fence == "sh" || fence == "bash" || fence == "console")
			pending = nil
			continue
		}
		if !inSh {
			continue
		}
		if pending == nil {
			if !strings.HasPrefix(line, "enqueue ") {
				continue
			}
			out = append(out, example{line: n})
			pending = &out[len(out)-1]
		} else {
			line = strings.TrimLeft(line, " \t")
		}
		body, more := strings.CutSuffix(line, `\`)
		if !more {
			pending.cmd += line
			pending.cmd, pending.status = splitComment(pending.cmd)
			pending = nil
			continue
		}
		pending.cmd += strings.TrimRight(body, " ") + " "
	}
	return out
}

// splitComment returns a command without its trailing comment (a # that
// starts a word outside quotes, as sh reads it) and the exit status the
// comment gives it.
func splitComment(cmd string) (string, int) {
	var quote rune
	for i, r := range cmd {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && i > 0 && (cmd[i-1] == ' ' || cmd[i-1] == '\t'):
			status := 0
			if m := exitsMarker.FindStringSubmatch(cmd[i:]); m != nil {
				status, _ = strconv.Atoi(m[1])
			}
			return strings.TrimSpace(cmd[:i]), status
		}
	}
	return strings.TrimSpace(cmd), 0
}

func TestReadmeExamplesAreExtractedAsAUserWouldTypeThem(t *testing.T) {
	t.Parallel()
	readme := "Run\n\n```sh\nmake run\nenqueue key delete --name a   # deletes a\n" +
		"enqueue certificate update --pem x.pem \\\n    --description \"a # b\" --wait\n" +
		"enqueue dlq purge   # no answer: exits 1\n```\n\n" +
		"```\nenqueue not-sh\n```\n" +
		"Prose: enqueue in text\n"
	want := []example{
		{line: 5, cmd: "enqueue key delete --name a"},
		{line: 6, cmd: `enqueue certificate update --pem x.pem --description "a # b" --wait`},
		{line: 8, cmd: "enqueue dlq purge", status: 1},
	}
	if diff := cmp.Diff(want, readmeExamples(readme), cmp.AllowUnexported(example{})); diff != "" {
		t.Errorf("examples (-want +got):\n%s", diff)
	}
}

// TestREADMEEnqueueExamplesRunAsWritten is issue 21's promise: after make
// run, every enqueue example of the README works as written from the
// repository's root, in the README's order, with bin/enqueue on the PATH.
// Each line is run by sh as typed, with nothing on standard input, and must
// exit 0, or with the status its comment gives ("# exits 1").
func TestREADMEEnqueueExamplesRunAsWritten(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples := readmeExamples(string(readme))
	// Both sections hold examples: a README reshaped so that none is
	// found must not pass for one whose examples all work.
	for _, want := range []string{"enqueue certificate update ", "enqueue dlq show "} {
		if !containsCmd(examples, want) {
			t.Fatalf("no example starting %q found in the README; found %d: %v", want, len(examples), examples)
		}
	}

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "enqueue"), "../enqueue")
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build enqueue: %v\n%s", err, out)
	}

	stdout, _ := startDevRun(t, "all sample jobs finished", "--samples", "--nats-url", "nats://127.0.0.1:"+freePort(t))
	natsURL := bannerValue(t, stdout.String(), "nats")
	waitForInventory(t, natsURL)

	for _, ex := range examples {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, "sh", "-c", ex.cmd)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "NATS_URL="+natsURL)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		status := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("README.md:%d %s: %v", ex.line, ex.cmd, err)
		}
		if status != ex.status {
			t.Errorf("README.md:%d %s\nexit status %d, want %d; output:\n%s", ex.line, ex.cmd, status, ex.status, out)
		}
	}
}

func containsCmd(examples []example, prefix string) bool {
	for _, ex := range examples {
		if strings.HasPrefix(ex.cmd, prefix) {
			return true
		}
	}
	return false
}

// waitForInventory waits until the inventory has written its first
// snapshot, which `enqueue certificates expiring` reads: a user reaches the
// README's examples later than make run's samples finish.
func waitForInventory(t *testing.T, natsURL string) {
	t.Helper()
	_, js := natstest.Dial(t, natsURL)
	poll.Until(t, 90*time.Second, "the inventory's first snapshot", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := inventory.ReadSnapshot(ctx, js)
		return err == nil
	})
}
