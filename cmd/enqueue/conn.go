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
	scoped  bool
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
	// A password or token only from the environment: a flag's value shows
	// in ps and in /proc/<pid>/cmdline to every user of the machine.
	c.nats.Password = getenv("NATS_PASSWORD")
	c.nats.Token = getenv("NATS_TOKEN")
	fs.StringVar(&c.nats.InboxPrefix, "inbox-prefix", getenv("NATS_INBOX_PREFIX"), "prefix of this client's reply subjects, e.g. _INBOX_<user> ($NATS_INBOX_PREFIX)")
	fs.StringVar(&c.nats.TLSCAFile, "tls-ca", getenv("NATS_TLS_CA"), "CA file to verify the NATS server ($NATS_TLS_CA)")
	fs.StringVar(&c.nats.TLSCertFile, "tls-cert", getenv("NATS_TLS_CERT"), "client certificate file for NATS ($NATS_TLS_CERT)")
	fs.StringVar(&c.nats.TLSKeyFile, "tls-key", getenv("NATS_TLS_KEY"), "client key file for NATS ($NATS_TLS_KEY)")
	fs.BoolVar(&c.wait, "wait", false, "wait for each job's result, print it, and fail unless every job succeeded")
	fs.BoolVar(&c.scoped, "scoped", false, "publish each job on its project's scoped subject, apiops.<resource>.<action>.<project>")
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
