package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"enqueue": main})
}

// TestScripts runs testdata/*.txtar: enqueue as a user types it, against a
// real NATS server, the simulator and a running worker.
func TestScripts(t *testing.T) {
	stack := workertest.Start(t, streams.Config{AckWait: 3 * time.Second, MaxDeliver: 3})
	sim := stack.Sim
	for _, k := range []string{"key-1", "key-2", "key-3", "key-4"} {
		sim.AddKey(workertest.Project, k)
	}
	for _, u := range []string{"user-1", "user-2"} {
		sim.AddCredential(workertest.Project, u, true)
	}
	pem, err := selfsigned.PEM("enqueue test")
	if err != nil {
		t.Fatal(err)
	}
	sim.AddCertificate(workertest.Project, "cert-1", pem)
	stack.StartWorker(t, workertest.Worker{Config: worker.Config{Concurrency: 4}})
	idle := idleServer(t)

	params := testscript.Params{
		Condition: condition,
		Setup: func(e *testscript.Env) error {
			e.Setenv("NATS_URL", stack.Server.ClientURL())
			e.Setenv("IDLE_NATS_URL", idle)
			return os.WriteFile(filepath.Join(e.WorkDir, "cert.pem"), []byte(pem), 0o600)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// simkey NAME adds a key to the simulator, as an operator fixing
			// Apinizer's state would.
			"simkey": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: simkey NAME")
				}
				sim.AddKey(workertest.Project, args[0])
			},
			// simcred NAME adds a credential with a public key.
			"simcred": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: simcred NAME")
				}
				sim.AddCredential(workertest.Project, args[0], true)
			},
			"exits": exits,
			// waitgone NAME waits up to 20s for the key to be deleted.
			"waitgone": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: waitgone NAME")
				}
				deadline := time.Now().Add(20 * time.Second)
				for sim.KeyExists(workertest.Project, args[0]) {
					if time.Now().After(deadline) {
						ts.Fatalf("key %s still exists after 20s", args[0])
					}
					time.Sleep(10 * time.Millisecond)
				}
			},
		},
	}
	// The scripts of testdata run in parallel. Those of testdata/serial run
	// after them: they purge the dead-letter queue and then find it empty,
	// which another script's refused job would race with.
	t.Run("in parallel", func(t *testing.T) {
		params.Dir = "testdata"
		testscript.Run(t, params)
	})
	t.Run("after the others", func(t *testing.T) {
		params.Dir = "testdata/serial"
		testscript.Run(t, params)
	})
}

// exits CODE COMMAND ARGS... runs the command and fails unless it exits
// with CODE; its output is kept for stdout and stderr.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	got := 0
	var ee *exec.ExitError
	if err := ts.Exec(args[1], args[2:]...); errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// condition answers the scripts' own conditions:
//
//	[defaultnatsfree] nothing listens on the default NATS URL's port
//	                  (127.0.0.1:4222), so that a script can show what a
//	                  user sees when nothing runs there.
func condition(cond string) (bool, error) {
	switch cond {
	case "defaultnatsfree":
		ln, err := net.Listen("tcp", "127.0.0.1:4222")
		if err != nil {
			return false, nil
		}
		ln.Close()
		return true, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// idleServer starts a server with the topology and no worker, for scripts
// that need jobs to stay without a result (--wait's timeout): they are never
// taken, so nothing depends on how quick the worker is, and they do not
// reach the dead letters the serial scripts count.
func idleServer(t *testing.T) string {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Provision(ctx, js, streams.Config{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL()
}
