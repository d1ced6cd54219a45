package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/natsconn"
)

// config is the worker's configuration: every setting has an environment
// variable, a flag that overrides it, and a default.
type config struct {
	nats natsconn.Config

	apinizerURL        string
	apinizerToken      string
	apinizerTokenFile  string
	apinizerCAFile     string
	apinizerClientCert string
	apinizerClientKey  string
	allowInsecureHTTP  bool

	metricsAddr string

	concurrency     int
	maxJobs         int
	ackWait         time.Duration
	maxDeliver      int
	retryBudget     time.Duration
	attemptTimeout  time.Duration
	jobTimeout      time.Duration
	shutdownGrace   time.Duration
	duplicateWindow time.Duration
	replicas        int
	lease           time.Duration

	logLevel  string
	logFormat string

	pprof      bool
	dev        bool
	devDataDir string
	samples    bool
	provision  bool
}

// parseConfig reads the environment through getenv, then the flags in args,
// then validates everything once, naming the variable at fault.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var errs []error
	str := func(p *string, env, name, def, usage string) {
		v := getenv(env)
		if v == "" {
			v = def
		}
		fs.StringVar(p, name, v, usage+" ($"+env+")")
	}
	num := func(p *int, env, name string, def int, usage string) {
		v := def
		if s := getenv(env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a whole number", env, s))
			}
			v = n
		}
		fs.IntVar(p, name, v, usage+" ($"+env+")")
	}
	dur := func(p *time.Duration, env, name string, def time.Duration, usage string) {
		v := def
		if s := getenv(env); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration (e.g. 30s, 5m)", env, s))
			}
			v = d
		}
		fs.DurationVar(p, name, v, usage+" ($"+env+")")
	}
	boolean := func(p *bool, env, name string, def bool, usage string) {
		v := def
		if s := getenv(env); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a boolean", env, s))
			}
			v = b
		}
		fs.BoolVar(p, name, v, usage+" ($"+env+")")
	}

	c.nats.Name = "apiops-worker"
	str(&c.nats.URL, "NATS_URL", "nats-url", natsconn.DefaultURL, "NATS server URL(s), comma-separated")
	str(&c.nats.CredsFile, "NATS_CREDS", "nats-creds", "", "NATS .creds file")
	str(&c.nats.User, "NATS_USER", "nats-user", "", "NATS user")
	str(&c.nats.Password, "NATS_PASSWORD", "nats-password", "", "NATS password")
	str(&c.nats.Token, "NATS_TOKEN", "nats-token", "", "NATS token")
	str(&c.nats.NKeySeedFile, "NATS_NKEY", "nats-nkey", "", "NATS NKey seed file")
	str(&c.nats.TLSCAFile, "NATS_TLS_CA", "nats-tls-ca", "", "CA file to verify the NATS server")
	str(&c.nats.TLSCertFile, "NATS_TLS_CERT", "nats-tls-cert", "", "client certificate file for NATS")
	str(&c.nats.TLSKeyFile, "NATS_TLS_KEY", "nats-tls-key", "", "client key file for NATS")
	str(&c.apinizerURL, "APINIZER_URL", "apinizer-url", "", "Apinizer base URL, e.g. https://demo.apinizer.com")
	str(&c.apinizerTokenFile, "APINIZER_TOKEN_FILE", "apinizer-token-file", "", "file holding the Apinizer personal API access token")
	c.apinizerToken = getenv("APINIZER_TOKEN") // no flag: a flag would show in ps
	str(&c.apinizerCAFile, "APINIZER_CA_FILE", "apinizer-ca-file", "", "CA bundle to verify Apinizer's certificate (default: system roots)")
	str(&c.apinizerClientCert, "APINIZER_CLIENT_CERT", "apinizer-client-cert", "", "client certificate file for Apinizer")
	str(&c.apinizerClientKey, "APINIZER_CLIENT_KEY", "apinizer-client-key", "", "client key file for Apinizer")
	boolean(&c.allowInsecureHTTP, "APINIZER_ALLOW_INSECURE_HTTP", "apinizer-allow-insecure-http", false, "allow plain http:// to a host that is not loopback (test networks only)")
	str(&c.metricsAddr, "METRICS_ADDR", "metrics-addr", ":9090", "listen address for /metrics, /healthz and /readyz")
	num(&c.concurrency, "WORKER_CONCURRENCY", "concurrency", 16, "Apinizer calls in flight at once")
	num(&c.maxJobs, "WORKER_MAX_JOBS", "max-jobs", 0, "jobs held at once, at least the concurrency (0: twice the concurrency)")
	dur(&c.ackWait, "WORKER_ACK_WAIT", "ack-wait", 30*time.Second, "consumer ack wait")
	num(&c.maxDeliver, "WORKER_MAX_DELIVER", "max-deliver", 20, "deliveries of one job before it fails")
	dur(&c.retryBudget, "WORKER_RETRY_BUDGET", "retry-budget", time.Minute, "in-process retry time per delivery")
	dur(&c.attemptTimeout, "WORKER_ATTEMPT_TIMEOUT", "attempt-timeout", 30*time.Second, "timeout of one Apinizer HTTP attempt")
	dur(&c.jobTimeout, "WORKER_JOB_TIMEOUT", "job-timeout", 5*time.Minute, "deadline of one delivery of a job")
	dur(&c.shutdownGrace, "WORKER_SHUTDOWN_GRACE", "shutdown-grace", 30*time.Second, "time in-flight jobs get to finish on shutdown")
	dur(&c.duplicateWindow, "WORKER_DUPLICATE_WINDOW", "duplicate-window", 10*time.Minute, "jobs stream duplicate window")
	num(&c.replicas, "WORKER_STREAM_REPLICAS", "replicas", 1, "replicas of the streams, consumer and bucket")
	dur(&c.lease, "WORKER_LEASE", "lease", time.Minute, "ledger lease of a claimed job")
	str(&c.logLevel, "LOG_LEVEL", "log-level", "info", "debug, info, warn or error")
	str(&c.logFormat, "LOG_FORMAT", "log-format", "", "json or text (default json; text with --dev)")
	boolean(&c.pprof, "WORKER_PPROF", "pprof", false, "serve Go's profiles under /debug/pprof/ on the metrics address (keep that address private)")
	boolean(&c.dev, "WORKER_DEV", "dev", false, "development setup: embedded NATS and the Apinizer simulator")
	str(&c.devDataDir, "WORKER_DEV_DATA_DIR", "dev-data-dir", "", "with --dev, where the embedded NATS keeps its data (default a temporary directory)")
	boolean(&c.samples, "WORKER_DEV_SAMPLES", "samples", false, "with --dev, publish one sample job of each kind and print the results")
	noProvision := false
	boolean(&noProvision, "WORKER_NO_PROVISION", "no-provision", false, "do not create streams, consumer and bucket; verify they exist")

	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.provision = !noProvision
	if c.logFormat == "" {
		c.logFormat = "json"
		if c.dev {
			c.logFormat = "text"
		}
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	bad := func(env, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, a...)))
	}
	if !c.dev {
		if c.apinizerURL == "" {
			bad("APINIZER_URL", "required (or run with --dev for the simulator)")
		} else if err := executor.CheckBaseURL(c.apinizerURL, c.allowInsecureHTTP); err != nil {
			bad("APINIZER_URL", "%v (APINIZER_ALLOW_INSECURE_HTTP=true allows plain http on an isolated test network)", err)
		}
		if c.apinizerToken == "" && c.apinizerTokenFile == "" {
			bad("APINIZER_TOKEN", "required, or APINIZER_TOKEN_FILE")
		}
		if c.apinizerToken != "" && c.apinizerTokenFile != "" {
			bad("APINIZER_TOKEN", "set only one of APINIZER_TOKEN and APINIZER_TOKEN_FILE")
		}
		if c.samples {
			bad("WORKER_DEV_SAMPLES", "only with --dev")
		}
	}
	if err := natsconn.Rename(c.nats.Validate(), natsVars); err != nil {
		errs = append(errs, err)
	}
	if (c.apinizerClientCert == "") != (c.apinizerClientKey == "") {
		bad("APINIZER_CLIENT_CERT", "APINIZER_CLIENT_CERT and APINIZER_CLIENT_KEY go together")
	}
	if c.concurrency < 1 || c.concurrency > 4096 {
		bad("WORKER_CONCURRENCY", "%d: want 1 to 4096", c.concurrency)
	}
	if c.maxJobs != 0 && (c.maxJobs < c.concurrency || c.maxJobs > 8192) {
		bad("WORKER_MAX_JOBS", "%d: want 0 (twice the concurrency) or %d (the concurrency) to 8192", c.maxJobs, c.concurrency)
	}
	if c.ackWait < time.Second {
		bad("WORKER_ACK_WAIT", "%s: want at least 1s", c.ackWait)
	}
	if c.maxDeliver < 2 {
		bad("WORKER_MAX_DELIVER", "%d: want at least 2", c.maxDeliver)
	}
	if c.retryBudget <= 0 {
		bad("WORKER_RETRY_BUDGET", "%s: want a positive duration", c.retryBudget)
	}
	if c.attemptTimeout <= 0 {
		bad("WORKER_ATTEMPT_TIMEOUT", "%s: want a positive duration", c.attemptTimeout)
	}
	if c.jobTimeout < c.attemptTimeout {
		bad("WORKER_JOB_TIMEOUT", "%s: want at least the attempt timeout %s", c.jobTimeout, c.attemptTimeout)
	}
	if c.shutdownGrace <= 0 {
		bad("WORKER_SHUTDOWN_GRACE", "%s: want a positive duration", c.shutdownGrace)
	}
	if c.duplicateWindow < time.Second {
		bad("WORKER_DUPLICATE_WINDOW", "%s: want at least 1s", c.duplicateWindow)
	}
	if c.replicas < 1 || c.replicas > 5 {
		bad("WORKER_STREAM_REPLICAS", "%d: want 1 to 5", c.replicas)
	}
	if c.lease < c.ackWait {
		bad("WORKER_LEASE", "%s: want at least the ack wait %s", c.lease, c.ackWait)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		bad("LOG_LEVEL", "%v", err)
	}
	if c.logFormat != "json" && c.logFormat != "text" {
		bad("LOG_FORMAT", "%q: want json or text", c.logFormat)
	}
	return errors.Join(errs...)
}

// natsVars names the variable of each NATS setting in errors.
var natsVars = map[natsconn.Setting]string{
	natsconn.SettingURL:          "NATS_URL",
	natsconn.SettingCredsFile:    "NATS_CREDS",
	natsconn.SettingNKeySeedFile: "NATS_NKEY",
	natsconn.SettingUser:         "NATS_USER",
	natsconn.SettingToken:        "NATS_TOKEN",
	natsconn.SettingTLSCAFile:    "NATS_TLS_CA",
	natsconn.SettingTLSCertFile:  "NATS_TLS_CERT",
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l, err
}

// apinizerTLS is the TLS configuration for Apinizer: the system roots or the
// CA file, and an optional client certificate. Verification stays on.
func (c config) apinizerTLS() (*tls.Config, error) {
	if c.apinizerCAFile == "" && c.apinizerClientCert == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.apinizerCAFile != "" {
		b, err := os.ReadFile(c.apinizerCAFile)
		if err != nil {
			return nil, fmt.Errorf("APINIZER_CA_FILE: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("APINIZER_CA_FILE: %s holds no PEM certificate", c.apinizerCAFile)
		}
	}
	if c.apinizerClientCert != "" {
		pair, err := tls.LoadX509KeyPair(c.apinizerClientCert, c.apinizerClientKey)
		if err != nil {
			return nil, fmt.Errorf("APINIZER_CLIENT_CERT: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// token returns the Apinizer token source: the inline token, or the token
// file, re-read whenever it changes so that a rotated token is used without
// a restart.
func (c config) token() func() (string, error) {
	if c.apinizerTokenFile == "" {
		t := c.apinizerToken
		return func() (string, error) { return t, nil }
	}
	return (&tokenFile{path: c.apinizerTokenFile}).get
}

// tokenFile caches a token file's content, keyed by its modification time
// and size, so that a call costs a stat, not a read.
type tokenFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	token   string
}

func (f *tokenFile) get() (string, error) {
	info, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("APINIZER_TOKEN_FILE: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" && info.ModTime().Equal(f.modTime) && info.Size() == f.size {
		return f.token, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("APINIZER_TOKEN_FILE: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("APINIZER_TOKEN_FILE is empty")
	}
	f.token, f.modTime, f.size = t, info.ModTime(), info.Size()
	return t, nil
}
