// Package natsconn opens the NATS connection of the worker and of enqueue
// from one validated Config: the servers, one way to authenticate (a .creds
// file, an NKey seed file, a user and password, or a token), TLS, and how a
// lost connection is noticed and recovered. The commands map their
// environment variables and flags onto Config and nothing more.
package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultURL is the server a command offers when none is given. Config has
// no default URL of its own, so that a URL set empty on purpose is an error
// rather than a silent fallback to loopback.
const DefaultURL = nats.DefaultURL

// Config is how to reach and authenticate to NATS.
type Config struct {
	// URL is one server URL or several, comma-separated: nats://, tls://,
	// ws:// or wss://, the scheme nats:// when none is written. Required. A
	// URL may hold a user and password or a token; errors and logs never
	// show them.
	URL string
	// Name is the connection's name in the server's monitoring, e.g.
	// apiops-worker. Default: none.
	Name string

	// At most one way to authenticate; with none the server must allow
	// anonymous clients.
	//
	// CredsFile is a .creds file (operator mode): a user JWT and its seed,
	// read again at each reconnect, so a rotated file is picked up.
	CredsFile string
	// NKeySeedFile is a file holding a user NKey seed.
	NKeySeedFile string
	// User and Password authenticate by name.
	User     string
	Password string
	// Token authenticates with an authorization token.
	Token string

	// InboxPrefix replaces nats.go's "_INBOX" as the prefix of this
	// connection's reply subjects: JetStream API answers, publish acks and
	// pulled messages. A server that lets each user subscribe only to
	// _INBOX_<user>.> keeps one user's replies (a dead letter an operator
	// reads, say) from every other user; the shipped users
	// (deploy/compose/nats-auth.conf) expect "_INBOX_<user>". Default: none,
	// nats.go's _INBOX.
	InboxPrefix string

	// TLSCAFile verifies the server's certificate against this CA bundle
	// rather than the system roots, and turns TLS on.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a client certificate and its key, for
	// a server that verifies its clients; they go together and turn TLS on.
	TLSCertFile string
	TLSKeyFile  string

	// ConnectTimeout bounds one attempt to reach one server, TLS handshake
	// included. Default 5s.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause before trying a server again after the
	// connection was lost. Default 1s. Reconnecting never gives up: a
	// connection closed for good would leave a worker running but deaf,
	// and enqueue bounds each of its operations with a deadline anyway.
	ReconnectWait time.Duration
	// PingInterval is how often the client asks the server for a pong;
	// after two unanswered pings the connection counts as lost and the
	// client reconnects. Default 5s. A connection cut off without a reset (a
	// partition, a dead peer) otherwise stays open for nats.go's 2 × 2
	// minutes, and a worker would look ready while holding jobs it cannot
	// settle.
	PingInterval time.Duration
	// StartupRetry is how long Connect keeps trying, with exponential
	// backoff, while no server can be reached at all: a worker started
	// before NATS (or while it restarts) waits for it instead of exiting
	// into a crash loop. A server that answers and refuses is not retried.
	// Default 0: one try, as a command line tool wants.
	StartupRetry time.Duration
}

// WithDefaults returns c with every unset duration at its default.
func (c Config) WithDefaults() Config {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 5 * time.Second
	}
	return c
}

// Validate reports every setting at fault, each as a *SettingError. It
// checks what can be checked without reading files; Connect checks the
// files.
func (c Config) Validate() error {
	var errs []error
	bad := func(s Setting, format string, a ...any) {
		errs = append(errs, &SettingError{Setting: s, Err: fmt.Errorf(format, a...)})
	}
	if err := checkURLs(c.URL); err != nil {
		errs = append(errs, &SettingError{Setting: SettingURL, Err: err})
	}
	var methods []Setting
	for _, m := range []struct {
		setting Setting
		set     bool
	}{
		{SettingCredsFile, c.CredsFile != ""},
		{SettingNKeySeedFile, c.NKeySeedFile != ""},
		{SettingUser, c.User != ""},
		{SettingToken, c.Token != ""},
	} {
		if m.set {
			methods = append(methods, m.setting)
		}
	}
	if len(methods) > 1 {
		// The worker used to pick one silently; an operator who set two
		// would never learn which one the server saw.
		bad(methods[1], "set only one way to authenticate: a .creds file, an NKey seed file, a user and password, or a token")
	}
	if c.InboxPrefix != "" {
		if err := checkInboxPrefix(c.InboxPrefix); err != nil {
			errs = append(errs, &SettingError{Setting: SettingInboxPrefix, Err: err})
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad(SettingTLSCertFile, "a client certificate and its key go together")
	}
	for _, d := range []struct {
		setting Setting
		value   time.Duration
	}{
		{SettingConnectTimeout, c.ConnectTimeout},
		{SettingReconnectWait, c.ReconnectWait},
		{SettingPingInterval, c.PingInterval},
		{SettingStartupRetry, c.StartupRetry},
	} {
		if d.value < 0 {
			bad(d.setting, "%s: want a positive duration", d.value)
		}
	}
	return errors.Join(errs...)
}

// checkInboxPrefix checks that p is a subject without wildcards, to which
// nats.go appends ".<unique token>". nats.go's own check misses empty tokens
// and white space, which the server would refuse only at the first request.
func checkInboxPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("%q: want a subject of non-empty tokens without wildcards or white space, e.g. _INBOX_apiops-worker", p)
		}
	}
	return nil
}

// checkURLs checks each URL of a comma-separated list the way nats.go will
// read it. A URL that does not parse is not echoed: it may hold a password.
func checkURLs(list string) error {
	n := 0
	for i, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		n++
		u, err := parseURL(raw)
		if err != nil {
			return fmt.Errorf("URL %d is not a valid URL", i+1)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%s: want a nats://, tls://, ws:// or wss:// URL", Redact(raw))
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%s: no host", Redact(raw))
		}
	}
	if n == 0 {
		return errors.New("required")
	}
	return nil
}

// parseURL parses one server URL, with nats.go's default scheme.
func parseURL(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	return url.Parse(raw)
}

// Redact returns a comma-separated server URL list without the user
// information any URL holds (a user and password, or a token), for errors
// and logs.
func Redact(list string) string {
	parts := strings.Split(list, ",")
	for i, raw := range parts {
		raw = strings.TrimSpace(raw)
		u, err := parseURL(raw)
		switch {
		case err != nil:
			parts[i] = "(URL that does not parse)"
		case u.User != nil:
			u.User = nil
			parts[i] = u.String()
		default:
			parts[i] = raw
		}
	}
	return strings.Join(parts, ",")
}
