package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/apiops-worker/apiops-worker/internal/buildinfo"
	"github.com/apiops-worker/apiops-worker/inventory"
	"github.com/apiops-worker/apiops-worker/natsconn"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// config is the worker's configuration: every setting has an environment
// variable, a flag that overrides it, and a default.
type config struct {
	nats natsconn.Config

	apinizerURL       string
	apinizerToken     string
	apinizerTokenFile string
	// ageIdentityFile holds the age identities that open encryptedContent.
	ageIdentityFile string
	// inventory watches the certificates Apinizer serves; off while
	// inventoryProjects is empty.
	// strandedInterval is the stranded-jobs check's period; 0 turns it off.
	strandedInterval  time.Duration
	inventory         inventory.Config
	inventoryProjects string
	inventoryRate     int
	// Client credentials, instead of a personal token.
	apinizerClientID         string
	apinizerClientSecret     string
	apinizerClientSecretFile string
	apinizerCAFile           string
	apinizerClientCert       string
	apinizerClientKey        string
	allowInsecureHTTP        bool

	metricsAddr string

	// worker and topo own their settings' defaults and ranges; the
	// environment and the flags only set them.
	worker worker.Config
	topo   streams.Config
	// settingVars names the variable of each field of worker and topo that
	// has one, for the fields' errors.
	settingVars map[string]string
	// flags names the flag of each variable that has one, so that errors
	// name both (named); groups lists the flags under their headings for
	// -h (usage).
	flags  map[string]string
	groups []flagGroup

	retryBudget    time.Duration
	attemptTimeout time.Duration
	lease          time.Duration

	logLevel  string
	logFormat string

	pprof      bool
	pprofAddr  string
	dev        bool
	devDataDir string
	samples    bool
	provision  bool
}

// parseConfig reads the environment through getenv, then the flags in args,
// then validates everything once, naming the variable and the flag at
// fault. For -h and --version it writes the help or the version to out and
// returns flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	c := config{worker: worker.Config{}.WithDefaults(), topo: streams.Config{}.WithDefaults(),
		settingVars: map[string]string{}, flags: map[string]string{}}
	c.worker.MaxJobs = 0 // the default for whatever concurrency is set
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	// Errors are returned, not printed; help goes to out (usage).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var errs []error
	// section starts the group of flags registered after it, for -h.
	section := func(heading string) { c.groups = append(c.groups, flagGroup{heading: heading}) }
	named := func(env, name string) {
		c.flags[env] = name
		g := &c.groups[len(c.groups)-1]
		g.flags = append(g.flags, name)
	}
	str := func(p *string, env, name, def, usage string) {
		v := getenv(env)
		if v == "" {
			v = def
		}
		fs.StringVar(p, name, v, usage+" ($"+env+")")
		named(env, name)
	}
	num := func(p *int, env, name string, def int, usage string) {
		v := def
		if s := getenv(env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (--%s): not a whole number", env, s, name))
			}
			v = n
		}
		*p = v
		fs.Var(intFlag{p, env}, name, usage+" ($"+env+")")
		named(env, name)
	}
	dur := func(p *time.Duration, env, name string, def time.Duration, usage string) {
		v := def
		if s := getenv(env); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (--%s): not a duration (e.g. 30s, 5m)", env, s, name))
			}
			v = d
		}
		*p = v
		fs.Var(durationFlag{p, env}, name, usage+" ($"+env+")")
		named(env, name)
	}
	boolean := func(p *bool, env, name string, def bool, usage string) {
		v := def
		if s := getenv(env); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (--%s): not a boolean", env, s, name))
			}
			v = b
		}
		fs.BoolVar(p, name, v, usage+" ($"+env+")")
		named(env, name)
	}
	// A component's setting defaults to the component's default, and its
	// errors name the variable and the flag.
	settingNum := func(p *int, field, env, name, usage string) {
		num(p, env, name, *p, usage)
		c.settingVars[field] = env
	}
	settingDur := func(p *time.Duration, field, env, name, usage string) {
		dur(p, env, name, *p, usage)
		c.settingVars[field] = env
	}

	section("NATS")
	c.nats.Name = "apiops-worker"
	str(&c.nats.URL, "NATS_URL", "nats-url", natsconn.DefaultURL, "NATS server URL(s), comma-separated")
	str(&c.nats.CredsFile, "NATS_CREDS", "nats-creds", "", "NATS .creds file")
	str(&c.nats.User, "NATS_USER", "nats-user", "", "NATS user")
	// No flags for the password and the token: a flag would show in ps and
	// in /debug/pprof/cmdline.
	c.nats.Password = getenv("NATS_PASSWORD")
	c.nats.Token = getenv("NATS_TOKEN")
	dur(&c.nats.StartupRetry, "NATS_STARTUP_RETRY", "nats-startup-retry", 2*time.Minute, "how long start-up keeps trying to reach NATS, with backoff, before it gives up")
	str(&c.nats.InboxPrefix, "NATS_INBOX_PREFIX", "nats-inbox-prefix", "", "prefix of the worker's reply subjects, e.g. _INBOX_apiops-worker, so that its user may subscribe to its own replies only")
	str(&c.nats.NKeySeedFile, "NATS_NKEY", "nats-nkey", "", "NATS NKey seed file")
	str(&c.nats.TLSCAFile, "NATS_TLS_CA", "nats-tls-ca", "", "CA file to verify the NATS server")
	str(&c.nats.TLSCertFile, "NATS_TLS_CERT", "nats-tls-cert", "", "client certificate file for NATS")
	str(&c.nats.TLSKeyFile, "NATS_TLS_KEY", "nats-tls-key", "", "client key file for NATS")

	section("Apinizer")
	str(&c.apinizerURL, "APINIZER_URL", "apinizer-url", "", "Apinizer base URL, e.g. https://demo.apinizer.com")
	str(&c.apinizerTokenFile, "APINIZER_TOKEN_FILE", "apinizer-token-file", "", "file holding the Apinizer personal API access token")
	c.apinizerToken = getenv("APINIZER_TOKEN") // no flag: a flag would show in ps
	str(&c.apinizerClientID, "APINIZER_CLIENT_ID", "apinizer-client-id", "", "Apinizer user whose client credentials get the token (POST /apiops/auth/token); with APINIZER_CLIENT_SECRET or --apinizer-client-secret-file")
	str(&c.apinizerClientSecretFile, "APINIZER_CLIENT_SECRET_FILE", "apinizer-client-secret-file", "", "file holding the client secret, re-read for every token fetch")
	str(&c.ageIdentityFile, "WORKER_AGE_IDENTITY_FILE", "age-identity-file", "", "file of age X25519 identities, one a line, that open SECRET_KEY and PRIVATE_KEY material")
	c.apinizerClientSecret = getenv("APINIZER_CLIENT_SECRET") // no flag: a flag would show in ps
	str(&c.apinizerCAFile, "APINIZER_CA_FILE", "apinizer-ca-file", "", "CA bundle to verify Apinizer's certificate (default: system roots)")
	str(&c.apinizerClientCert, "APINIZER_CLIENT_CERT", "apinizer-client-cert", "", "client certificate file for Apinizer")
	str(&c.apinizerClientKey, "APINIZER_CLIENT_KEY", "apinizer-client-key", "", "client key file for Apinizer")
	boolean(&c.allowInsecureHTTP, "APINIZER_ALLOW_INSECURE_HTTP", "apinizer-allow-insecure-http", false, "allow plain http:// to a host that is not loopback (test networks only)")
	dur(&c.retryBudget, "WORKER_RETRY_BUDGET", "retry-budget", time.Minute, "in-process retry time per delivery")
	dur(&c.attemptTimeout, "WORKER_ATTEMPT_TIMEOUT", "attempt-timeout", 30*time.Second, "timeout of one Apinizer HTTP attempt")

	section("Worker")
	settingNum(&c.worker.Concurrency, "Concurrency", "WORKER_CONCURRENCY", "concurrency", "Apinizer calls in flight at once")
	settingNum(&c.worker.MaxJobs, "MaxJobs", "WORKER_MAX_JOBS", "max-jobs", "jobs held at once, at least the concurrency (0: the concurrency plus as many again, at most 256 more)")
	settingDur(&c.worker.JobTimeout, "JobTimeout", "WORKER_JOB_TIMEOUT", "job-timeout", "deadline of one delivery of a job")
	settingDur(&c.worker.ShutdownGrace, "ShutdownGrace", "WORKER_SHUTDOWN_GRACE", "shutdown-grace", "time in-flight jobs get to finish on shutdown")
	settingDur(&c.topo.AckWait, "AckWait", "WORKER_ACK_WAIT", "ack-wait", "consumer ack wait")
	settingNum(&c.topo.MaxDeliver, "MaxDeliver", "WORKER_MAX_DELIVER", "max-deliver", "deliveries of one job before it fails")
	settingDur(&c.topo.DuplicateWindow, "DuplicateWindow", "WORKER_DUPLICATE_WINDOW", "duplicate-window", "jobs stream duplicate window")
	settingNum(&c.topo.Replicas, "Replicas", "WORKER_STREAM_REPLICAS", "replicas", "replicas of the streams, consumer and bucket")
	dur(&c.lease, "WORKER_LEASE", "lease", time.Minute, "ledger lease of a claimed job")
	dur(&c.strandedInterval, "WORKER_STRANDED_CHECK_INTERVAL", "stranded-check-interval", 5*time.Minute, "how often one replica counts the jobs the server gave up on that no worker finished (apiops_stranded_jobs); 0 turns the check off")
	noProvision := false
	boolean(&noProvision, "WORKER_NO_PROVISION", "no-provision", false, "do not create streams, consumer and bucket; verify they exist")

	section("Certificate inventory")
	str(&c.inventoryProjects, "APINIZER_INVENTORY_PROJECTS", "inventory-projects", "", "projects whose certificates the inventory watches, comma-separated; * for every project; empty: no inventory")
	dur(&c.inventory.Interval, "APINIZER_INVENTORY_INTERVAL", "inventory-interval", 10*time.Minute, "time between inventory rounds")
	dur(&c.inventory.ExpiryWarning, "APINIZER_EXPIRY_WARNING", "expiry-warning", 720*time.Hour, "how close a certificate's notAfter must be for an expiry event")
	num(&c.inventory.MaxSeries, "APINIZER_INVENTORY_MAX_SERIES", "inventory-max-series", 5000, "certificate/environment series exported at most; beyond it the soonest-expiring")
	num(&c.inventoryRate, "APINIZER_INVENTORY_REQUEST_RATE", "inventory-request-rate", 5, "inventory calls to Apinizer per second at most")
	dur(&c.inventory.Lease, "APINIZER_INVENTORY_LEASE", "inventory-lease", 30*time.Second, "another replica takes the inventory over within this after its holder dies")

	section("Observability")
	str(&c.metricsAddr, "METRICS_ADDR", "metrics-addr", ":9090", "listen address for /metrics, /healthz and /readyz")
	str(&c.logLevel, "LOG_LEVEL", "log-level", "info", "debug, info, warn or error")
	str(&c.logFormat, "LOG_FORMAT", "log-format", "", "json or text (default json; text with --dev)")
	boolean(&c.pprof, "WORKER_PPROF", "pprof", false, "serve Go's profiles under /debug/pprof/ on --pprof-addr")
	str(&c.pprofAddr, "WORKER_PPROF_ADDR", "pprof-addr", "127.0.0.1:6060", "address of the profiles with --pprof: its own, never the metrics address, loopback unless you mean otherwise (profiles include the command line)")

	section("Development (make run)")
	boolean(&c.dev, "WORKER_DEV", "dev", false, "development setup: embedded NATS and the Apinizer simulator")
	str(&c.devDataDir, "WORKER_DEV_DATA_DIR", "dev-data-dir", "", "with --dev, where the embedded NATS keeps its data (default a temporary directory)")
	boolean(&c.samples, "WORKER_DEV_SAMPLES", "samples", false, "with --dev, publish one sample job of each kind and print the results")
	version := false
	fs.BoolVar(&version, "version", false, "print the version and exit")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(out, fs)
			return config{}, err
		}
		return config{}, fmt.Errorf("%w (worker -h lists the flags)", err)
	}
	if version {
		fmt.Fprintln(out, "worker", buildinfo.Version())
		return config{}, flag.ErrHelp
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (worker takes flags only; worker -h lists them)", fs.Arg(0))
	}
	c.provision = !noProvision
	for p := range strings.SplitSeq(c.inventoryProjects, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.inventory.Projects = append(c.inventory.Projects, p)
		}
	}
	c.inventory.RequestRate = rate.Limit(c.inventoryRate)
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

// durationFlag and intFlag are flag.Value like the flag package's own, with
// errors that say what a value should look like and name the variable that
// sets it too: the flag package's own say "parse error".
type durationFlag struct {
	p   *time.Duration
	env string
}

func (f durationFlag) String() string {
	if f.p == nil {
		return ""
	}
	return f.p.String()
}

func (f durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration (e.g. 30s, 5m); $%s sets it too", f.env)
	}
	*f.p = d
	return nil
}

type intFlag struct {
	p   *int
	env string
}

func (f intFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.Itoa(*f.p)
}

func (f intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not a whole number; $%s sets it too", f.env)
	}
	*f.p = n
	return nil
}
