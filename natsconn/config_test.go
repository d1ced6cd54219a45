package natsconn_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/natsconn"
)

func TestValidateRefusesEachBadSettingByName(t *testing.T) {
	t.Parallel()
	const secret = "pw-7e1a-DO-NOT-LEAK"
	for _, tc := range []struct {
		name string
		cfg  natsconn.Config
		want natsconn.Setting
	}{
		{"no URL", natsconn.Config{}, natsconn.SettingURL},
		{"only commas for URLs", natsconn.Config{URL: " , "}, natsconn.SettingURL},
		{"an http URL", natsconn.Config{URL: "http://u:" + secret + "@nats:4222"}, natsconn.SettingURL},
		{"a URL without a host", natsconn.Config{URL: "nats://:4222"}, natsconn.SettingURL},
		{"a URL that does not parse", natsconn.Config{URL: "nats://u:" + secret + "%zz@nats:4222"}, natsconn.SettingURL},
		{"a .creds file and a user", natsconn.Config{URL: "nats://nats", CredsFile: "u.creds", User: "u"}, natsconn.SettingUser},
		{"an NKey and a token", natsconn.Config{URL: "nats://nats", NKeySeedFile: "u.nk", Token: secret}, natsconn.SettingToken},
		{"a client certificate without its key", natsconn.Config{URL: "nats://nats", TLSCertFile: "c.pem"}, natsconn.SettingTLSCertFile},
		{"a client key without its certificate", natsconn.Config{URL: "nats://nats", TLSKeyFile: "k.pem"}, natsconn.SettingTLSCertFile},
		{"a negative connect timeout", natsconn.Config{URL: "nats://nats", ConnectTimeout: -time.Second}, natsconn.SettingConnectTimeout},
		{"a negative ping interval", natsconn.Config{URL: "nats://nats", PingInterval: -time.Second}, natsconn.SettingPingInterval},
		{"an inbox prefix ending in a dot", natsconn.Config{URL: "nats://nats", InboxPrefix: "_INBOX_u."}, natsconn.SettingInboxPrefix},
		{"an inbox prefix with a wildcard", natsconn.Config{URL: "nats://nats", InboxPrefix: "_INBOX_*"}, natsconn.SettingInboxPrefix},
		{"an inbox prefix with an empty token", natsconn.Config{URL: "nats://nats", InboxPrefix: "_INBOX..u"}, natsconn.SettingInboxPrefix},
		{"an inbox prefix with a space", natsconn.Config{URL: "nats://nats", InboxPrefix: "_INBOX u"}, natsconn.SettingInboxPrefix},
	} {
		t.Run(tc.name+" is refused as the "+string(tc.want), func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.WithDefaults().Validate()
			var se *natsconn.SettingError
			if !errors.As(err, &se) || se.Setting != tc.want {
				t.Fatalf("Validate: %v, want a setting error of %s", err, tc.want)
			}
			if lines := strings.Count(err.Error(), "\n") + 1; lines != 1 {
				t.Errorf("%d errors, want 1:\n%s", lines, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("LEAK: the error shows a secret: %s", err)
			}
		})
	}
}

func TestValidateAcceptsGoodSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  natsconn.Config
	}{
		{"the default URL alone", natsconn.Config{URL: natsconn.DefaultURL}},
		{"three URLs of a cluster, one without a scheme", natsconn.Config{URL: "nats://a:4222, tls://b:4222,c:4222"}},
		{"a websocket URL", natsconn.Config{URL: "wss://nats.example.com"}},
		{"a user without a password", natsconn.Config{URL: "nats://nats", User: "u"}},
		{"a private inbox prefix", natsconn.Config{URL: "nats://nats", InboxPrefix: "_INBOX_apiops-worker"}},
		{"a user, password and TLS with a client certificate", natsconn.Config{URL: "nats://nats", User: "u", Password: "p", TLSCAFile: "ca.pem", TLSCertFile: "c.pem", TLSKeyFile: "k.pem"}},
	} {
		t.Run(tc.name+" is accepted", func(t *testing.T) {
			t.Parallel()
			if err := tc.cfg.WithDefaults().Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWithDefaultsFillsOnlyUnsetDurations(t *testing.T) {
	t.Parallel()
	got := natsconn.Config{PingInterval: time.Minute}.WithDefaults()
	want := natsconn.Config{ConnectTimeout: 5 * time.Second, ReconnectWait: time.Second, PingInterval: time.Minute}
	if got != want {
		t.Errorf("WithDefaults = %+v, want %+v", got, want)
	}
}

func TestRedactDropsCredentialsFromEachURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"a URL without credentials", "nats://a:4222", "nats://a:4222"},
		{"a user and password", "nats://u:pw@a:4222", "nats://a:4222"},
		{"a token", "tls://t0ken@a:4222", "tls://a:4222"},
		{"a list", "nats://u:pw@a:4222, nats://b:4222", "nats://a:4222,nats://b:4222"},
		{"no scheme", "u:pw@a:4222", "nats://a:4222"},
		{"a URL that does not parse", "nats://u:p%zz@a", "(URL that does not parse)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := natsconn.Redact(tc.in); got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRenameNamesEachSettingTheCommandsWay(t *testing.T) {
	t.Parallel()
	err := natsconn.Config{CredsFile: "u.creds", Token: "t", TLSCertFile: "c.pem"}.WithDefaults().Validate()
	got := natsconn.Rename(err, map[natsconn.Setting]string{
		natsconn.SettingURL:         "NATS_URL",
		natsconn.SettingTLSCertFile: "NATS_TLS_CERT",
	}).Error()
	for _, want := range []string{"NATS_URL: required", "NATS_TLS_CERT: ", string(natsconn.SettingToken) + ": set only one way"} {
		if !strings.Contains(got, want) {
			t.Errorf("renamed error does not contain %q:\n%s", want, got)
		}
	}
	var se *natsconn.SettingError
	if renamed := natsconn.Rename(&natsconn.SettingError{Setting: natsconn.SettingURL, Err: errors.New("x")}, map[natsconn.Setting]string{natsconn.SettingURL: "NATS_URL"}); !errors.As(renamed, &se) || se.Setting != natsconn.SettingURL {
		t.Errorf("a renamed error is no longer a setting error of %s: %#v", natsconn.SettingURL, renamed)
	}
	if natsconn.Rename(nil, nil) != nil {
		t.Error("Rename(nil) is not nil")
	}
}
