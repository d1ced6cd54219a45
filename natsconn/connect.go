package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Connect validates cfg, checks the files it names, and connects. A setting
// at fault is a *SettingError; a server that cannot be reached or refuses
// the client is an error naming the URLs tried, without credentials.
// Credentials never reach log, which hears of disconnects and reconnects.
//
// ctx abandons the attempt: Connect returns at once, and the connection,
// if it is made after all (each server's attempt is bounded by
// ConnectTimeout), is closed.
func Connect(ctx context.Context, cfg Config, log *slog.Logger) (*nats.Conn, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := cfg.options(log)
	if err != nil {
		return nil, err
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 250*time.Millisecond, 5*time.Second, cfg.StartupRetry
	for {
		nc, err := connect(ctx, cfg, opts)
		if err == nil || cfg.StartupRetry <= 0 || !errors.Is(err, nats.ErrNoServers) {
			return nc, err
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return nil, fmt.Errorf("%w (tried for %s)", err, cfg.StartupRetry)
		}
		log.Warn("NATS cannot be reached yet; retrying", "url", Redact(cfg.URL), "in", wait, "for_at_most", cfg.StartupRetry, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(cfg.URL), ctx.Err())
		case <-t.C:
		}
	}
}

// connect makes one attempt, abandoned when ctx ends.
func connect(ctx context.Context, cfg Config, opts []nats.Option) (*nats.Conn, error) {
	type attempt struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan attempt, 1)
	go func() {
		nc, err := nats.Connect(cfg.URL, opts...)
		done <- attempt{nc, err}
	}()
	select {
	case a := <-done:
		if errors.Is(a.err, nats.ErrNoServers) {
			return nil, fmt.Errorf("cannot reach NATS at %s: %w", Redact(cfg.URL), a.err)
		} else if a.err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(cfg.URL), a.err)
		}
		return a.nc, nil
	case <-ctx.Done():
		go func() {
			if a := <-done; a.nc != nil {
				a.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(cfg.URL), ctx.Err())
	}
}

// options turns cfg into nats.go's options, checking each file it names so
// that a bad one is reported as its setting rather than as a refused
// connection.
func (c Config) options(log *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait),
		nats.PingInterval(c.PingInterval),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			// nats.go calls this on Close too, with no error, and maybe
			// after the caller has moved on: closing is not news.
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// Not nats.go's ConnectedUrlRedacted: it keeps a token
			// written as the URL's user.
			log.Info("NATS reconnected", "server", Redact(nc.ConnectedUrl()))
		}),
	}
	if c.Name != "" {
		opts = append(opts, nats.Name(c.Name))
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	switch {
	case c.CredsFile != "":
		if err := checkCreds(c.CredsFile); err != nil {
			return nil, &SettingError{Setting: SettingCredsFile, Err: err}
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, &SettingError{Setting: SettingNKeySeedFile, Err: err}
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	// nats.go loads the TLS files when the option is applied and again at
	// each reconnect (so rotated files are used); applying each one to a
	// scratch Options here finds a bad file before any connection.
	var scratch nats.Options
	if c.TLSCAFile != "" {
		o := nats.RootCAs(c.TLSCAFile)
		if err := o(&scratch); err != nil {
			return nil, &SettingError{Setting: SettingTLSCAFile, Err: err}
		}
		opts = append(opts, o)
	}
	if c.TLSCertFile != "" {
		o := nats.ClientCert(c.TLSCertFile, c.TLSKeyFile)
		if err := o(&scratch); err != nil {
			return nil, &SettingError{Setting: SettingTLSCertFile, Err: err}
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// checkCreds checks that a .creds file holds a user seed. nats.go reads the
// file only while connecting, and would report a bad one as a refusal.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	defer clear(b)
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return err
	}
	kp.Wipe()
	return nil
}
