package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/natsconn"
	"github.com/apiops-worker/apiops-worker/streams"
)

// common holds the flags every command takes.
type common struct {
	nats    natsconn.Config
	id      string
	wait    bool
	timeout time.Duration
}

func (c *common) register(fs *flag.FlagSet, getenv func(string) string) {
	def := func(env, fallback string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return fallback
	}
	c.nats.Name = "apiops-enqueue"
	fs.StringVar(&c.nats.URL, "nats-url", def("NATS_URL", natsconn.DefaultURL), "NATS server URL(s) ($NATS_URL)")
	fs.StringVar(&c.nats.CredsFile, "creds", getenv("NATS_CREDS"), "NATS .creds file ($NATS_CREDS)")
	fs.StringVar(&c.nats.NKeySeedFile, "nkey", getenv("NATS_NKEY"), "NATS NKey seed file ($NATS_NKEY)")
	fs.StringVar(&c.nats.User, "user", getenv("NATS_USER"), "NATS user ($NATS_USER)")
	fs.StringVar(&c.nats.Password, "password", getenv("NATS_PASSWORD"), "NATS password ($NATS_PASSWORD)")
	fs.StringVar(&c.nats.Token, "token", getenv("NATS_TOKEN"), "NATS token ($NATS_TOKEN)")
	fs.StringVar(&c.nats.TLSCAFile, "tls-ca", getenv("NATS_TLS_CA"), "CA file to verify the NATS server ($NATS_TLS_CA)")
	fs.StringVar(&c.nats.TLSCertFile, "tls-cert", getenv("NATS_TLS_CERT"), "client certificate file for NATS ($NATS_TLS_CERT)")
	fs.StringVar(&c.nats.TLSKeyFile, "tls-key", getenv("NATS_TLS_KEY"), "client key file for NATS ($NATS_TLS_KEY)")
	fs.BoolVar(&c.wait, "wait", false, "wait for each job's result, print it, and fail unless every job succeeded")
	fs.DurationVar(&c.timeout, "timeout", time.Minute, "with --wait, how long to wait for the results")
}

// connect opens the connection; a lost connection is reported on stderr
// while the client reconnects.
func (c *common) connect(ctx context.Context, stderr io.Writer) (*nats.Conn, jetstream.JetStream, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := natsconn.Connect(ctx, c.nats, log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// waiter collects the results of the jobs it was told about. It is started
// before the jobs are published, so no result can slip past it.
type waiter struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
	want map[string]bool
	got  []jobs.Result
}

func newWaiter(ctx context.Context, js jetstream.JetStream) (*waiter, error) {
	cons, err := streams.WatchResults(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("watch results: %w", err)
	}
	return &waiter{js: js, cons: cons, want: make(map[string]bool)}, nil
}

// expect adds a job to wait for. A duplicate publish was dropped by the
// server, so its result, if the job is final already, is in the ledger.
func (w *waiter) expect(ctx context.Context, jobID string, duplicate bool) error {
	w.want[jobID] = true
	if !duplicate {
		return nil
	}
	kv, err := w.js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		return fmt.Errorf("look up job %q: %w", jobID, err)
	}
	rec, err := ledger.ReadJob(ctx, kv, jobID)
	if err == nil && rec.State == ledger.StateFinal && rec.Result != nil {
		w.found(*rec.Result)
	} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("look up job %q: %w", jobID, err)
	}
	return nil
}

func (w *waiter) found(r jobs.Result) {
	if w.want[r.JobID] {
		delete(w.want, r.JobID)
		w.got = append(w.got, r)
	}
}

// wait prints each result as one JSON line and fails unless every job
// succeeded within the timeout.
func (w *waiter) wait(ctx context.Context, timeout time.Duration, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	failed := 0
	print := func(r jobs.Result) {
		line, _ := json.Marshal(r)
		fmt.Fprintf(stdout, "%s\n", line)
		printLive(stderr, r)
		if !done(r) {
			failed++
		}
	}
	for _, r := range w.got {
		print(r)
	}
	for len(w.want) > 0 {
		msg, err := w.cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("waiting for results: %w", err)
		}
		var r jobs.Result
		if json.Unmarshal(msg.Data(), &r) != nil || !w.want[r.JobID] {
			continue
		}
		delete(w.want, r.JobID)
		print(r)
	}
	if n := len(w.want); n > 0 {
		fmt.Fprintf(stderr, "no result within %s for %d job(s)\n", timeout, n)
		return fmt.Errorf("%w: %d without a result, %d did not succeed", errNotSucceeded, n, failed)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d did not succeed", errNotSucceeded, failed)
	}
	return nil
}

// runResult prints a past job's result from the ledger.
func runResult(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("enqueue result", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("result: want exactly one job id")
	}
	jobID := fs.Arg(0)
	nc, js, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if err != nil {
		return fmt.Errorf("result: open ledger: %w", err)
	}
	rec, err := ledger.ReadJob(ctx, kv, jobID)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("%w: no record of job %q (never applied, invalid, or expired from the ledger)", errNotSucceeded, jobID)
	case err != nil:
		return fmt.Errorf("result: %w", err)
	case rec.State != ledger.StateFinal || rec.Result == nil:
		return fmt.Errorf("%w: job %q is in progress (%d attempts so far)", errNotSucceeded, jobID, rec.Attempts)
	}
	line, _ := json.Marshal(rec.Result)
	fmt.Fprintf(stdout, "%s\n", line)
	if rec.Result.Status != jobs.StatusSucceeded {
		return fmt.Errorf("%w: job %q ended %s", errNotSucceeded, jobID, rec.Result.Status)
	}
	return nil
}
