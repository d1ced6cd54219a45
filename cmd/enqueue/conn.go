package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/apiops-worker/apiops-worker/natsconn"
)

// common holds the flags that more than one command takes: the NATS
// connection's, on every command, and the publishing ones.
type common struct {
	nats   natsconn.Config
	id     string
	scoped bool
	waitFlags
	// forceNewID ignores the ids given (--id, a file's jobId) and
	// generates new ones.
	forceNewID bool
}

// registerNATS adds the connection flags, named as the nats CLI names them
// (-s/--server, --creds, --nkey, --tlscert, --tlskey, --tlsca); the names of
// earlier versions (--nats-url, --tls-ca, --tls-cert, --tls-key) still work
// through aliases.
func (c *common) registerNATS(fs *pflag.FlagSet, getenv func(string) string) {
	def := func(env, fallback string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return fallback
	}
	c.nats.Name = "apiops-enqueue"
	fs.StringVarP(&c.nats.URL, "server", "s", def("NATS_URL", natsconn.DefaultURL), "NATS server URL(s) ($NATS_URL)")
	fs.StringVar(&c.nats.CredsFile, "creds", getenv("NATS_CREDS"), "NATS .creds file ($NATS_CREDS)")
	fs.StringVar(&c.nats.NKeySeedFile, "nkey", getenv("NATS_NKEY"), "NATS NKey seed file ($NATS_NKEY)")
	fs.StringVar(&c.nats.User, "user", getenv("NATS_USER"), "NATS user ($NATS_USER; the password only from $NATS_PASSWORD)")
	// A password or token only from the environment: a flag's value shows
	// in ps and in /proc/<pid>/cmdline to every user of the machine.
	c.nats.Password = getenv("NATS_PASSWORD")
	c.nats.Token = getenv("NATS_TOKEN")
	fs.StringVar(&c.nats.InboxPrefix, "inbox-prefix", getenv("NATS_INBOX_PREFIX"), "prefix of this client's reply subjects, e.g. _INBOX_<user> ($NATS_INBOX_PREFIX)")
	fs.StringVar(&c.nats.TLSCAFile, "tlsca", getenv("NATS_TLS_CA"), "CA file to verify the NATS server ($NATS_TLS_CA)")
	fs.StringVar(&c.nats.TLSCertFile, "tlscert", getenv("NATS_TLS_CERT"), "client certificate file for NATS ($NATS_TLS_CERT)")
	fs.StringVar(&c.nats.TLSKeyFile, "tlskey", getenv("NATS_TLS_KEY"), "client key file for NATS ($NATS_TLS_KEY)")
}

// registerPublish adds the flags of the commands that publish jobs.
func (c *common) registerPublish(fs *pflag.FlagSet) {
	c.waitFlags.register(fs)
	fs.BoolVar(&c.scoped, "scoped", false, "publish each job on its project's scoped subject, apiops.<resource>.<action>.<project>")
	fs.BoolVar(&c.forceNewID, "force-new-id", false, "ignore the job id given (--id, a file's jobId) and publish under a new, generated one")
}

// seconds is a duration flag that also takes a plain number of seconds.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }
func (s *seconds) Type() string   { return "duration" }
func (s *seconds) Set(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
		*s = seconds(n * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration with its unit (90s, 2m, 1h) or a number of seconds")
	}
	*s = seconds(d)
	return nil
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
