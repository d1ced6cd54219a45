package natsconn_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/natsconn"
	"github.com/apiops-worker/apiops-worker/natsconn/natsconntest"
)

var captureLogger = natsconntest.CaptureLogger

func TestConnectEachMethodConnectsAndAWrongCredentialIsRefusedWithoutLeaking(t *testing.T) {
	t.Parallel()
	for _, a := range natsconntest.All(t) {
		t.Run(a.Name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.RunServer(t, a.Server)
			url := srv.ClientURL()

			t.Run("the right credential connects", func(t *testing.T) {
				log, logs := captureLogger()
				cfg := a.Good
				cfg.URL = url
				nc, err := natsconn.Connect(context.Background(), cfg, log)
				if err != nil {
					natsconntest.AssertNoSecret(t, "the connect error", err.Error(), a.Secrets)
					t.Fatalf("Connect: %v", err)
				}
				defer nc.Close()
				if err := nc.Flush(); err != nil {
					t.Fatalf("round trip: %v", err)
				}
				nc.Close()
				natsconntest.AssertNoSecret(t, "the log", logs.String(), a.Secrets)
			})

			t.Run("a wrong credential is refused and not echoed", func(t *testing.T) {
				log, logs := captureLogger()
				cfg := a.Bad
				cfg.URL = url
				nc, err := natsconn.Connect(context.Background(), cfg, log)
				if err == nil {
					nc.Close()
					t.Fatal("Connect succeeded with a wrong credential")
				}
				if !strings.Contains(err.Error(), url) {
					t.Errorf("error %q does not name the URL %s", err, url)
				}
				natsconntest.AssertNoSecret(t, "the connect error", err.Error(), a.Secrets)
				natsconntest.AssertNoSecret(t, "the log", logs.String(), a.Secrets)
			})

			t.Run("no credential is refused", func(t *testing.T) {
				log, _ := captureLogger()
				nc, err := natsconn.Connect(context.Background(), natsconn.Config{URL: url}, log)
				if err == nil {
					nc.Close()
					t.Fatal("Connect succeeded without credentials")
				}
			})
		})
	}
}

func TestConnectReportsAnUnusableFileAsItsSetting(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	const secret = "SUAGARBAGE-not-a-seed-but-secret-5e1d"
	garbage := natsconntest.WriteFile(t, "garbage", []byte(secret+"\n"))
	absent := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct {
		name string
		cfg  natsconn.Config
		want natsconn.Setting
	}{
		{"a missing NKey seed file", natsconn.Config{NKeySeedFile: absent}, natsconn.SettingNKeySeedFile},
		{"an NKey seed file holding no seed", natsconn.Config{NKeySeedFile: garbage}, natsconn.SettingNKeySeedFile},
		{"a missing .creds file", natsconn.Config{CredsFile: absent}, natsconn.SettingCredsFile},
		{"a .creds file holding no credentials", natsconn.Config{CredsFile: garbage}, natsconn.SettingCredsFile},
		{"a missing CA file", natsconn.Config{TLSCAFile: absent}, natsconn.SettingTLSCAFile},
		{"a CA file holding no certificate", natsconn.Config{TLSCAFile: garbage}, natsconn.SettingTLSCAFile},
		{"a client key that is no key", natsconn.Config{TLSCertFile: garbage, TLSKeyFile: garbage}, natsconn.SettingTLSCertFile},
	} {
		t.Run(tc.name+" is a "+string(tc.want)+" error", func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.URL = srv.ClientURL()
			log, logs := captureLogger()
			nc, err := natsconn.Connect(context.Background(), cfg, log)
			if err == nil {
				nc.Close()
				t.Fatal("Connect succeeded")
			}
			var se *natsconn.SettingError
			if !errors.As(err, &se) || se.Setting != tc.want {
				t.Errorf("error %q is not a setting error of %s", err, tc.want)
			}
			natsconntest.AssertNoSecret(t, "the connect error", err.Error(), map[string]string{"file content": secret})
			natsconntest.AssertNoSecret(t, "the log", logs.String(), map[string]string{"file content": secret})
		})
	}
}

func TestConnectSaysWhichURLItCouldNotReachWithoutItsCredentials(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	log, logs := captureLogger()
	_, err = natsconn.Connect(context.Background(), natsconn.Config{URL: "nats://apiops:s3cret-pw@" + addr + ", nats://tok3n-secret@" + addr}, log)
	if err == nil {
		t.Fatal("Connect succeeded with nothing listening")
	}
	want := "cannot reach NATS at nats://" + addr + ",nats://" + addr + ": "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
	secrets := map[string]string{"password": "s3cret-pw", "token": "tok3n-secret"}
	natsconntest.AssertNoSecret(t, "the connect error", err.Error(), secrets)
	natsconntest.AssertNoSecret(t, "the log", logs.String(), secrets)
}

func TestConnectGivesUpWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	// A server that accepts and never speaks: the client waits for its INFO
	// until the connect timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 8)
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	log, _ := captureLogger()
	start := time.Now()
	_, err = natsconn.Connect(ctx, natsconn.Config{URL: "nats://" + ln.Addr().String(), ConnectTimeout: time.Minute}, log)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Connect returned %s after the context ended, want at once", d)
	}
}

// A user allowed to subscribe only to its own inbox prefix gets its
// JetStream answers with InboxPrefix set, and none without it.
func TestConnectUsesTheInboxPrefix(t *testing.T) {
	t.Parallel()
	const user, password, prefix = "apiops-producer", "inbox-test-password", "_INBOX_apiops-producer"
	srv := natstest.RunServer(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: user, Password: password, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.INFO"}},
			Subscribe: &server.SubjectPermission{Allow: []string{prefix + ".>"}},
		}}}
	})
	for _, tc := range []struct {
		name        string
		inboxPrefix string
		wantAnswer  bool
	}{
		{"with its private prefix the user gets JetStream's answer", prefix, true},
		{"with nats.go's _INBOX the user gets no answer", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log, _ := captureLogger()
			nc, err := natsconn.Connect(context.Background(), natsconn.Config{
				URL: srv.ClientURL(), User: user, Password: password, InboxPrefix: tc.inboxPrefix,
			}, log)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if tc.inboxPrefix != "" && !strings.HasPrefix(nc.NewInbox(), tc.inboxPrefix+".") {
				t.Errorf("inbox %s does not start with %s.", nc.NewInbox(), tc.inboxPrefix)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = js.AccountInfo(ctx)
			if got := err == nil; got != tc.wantAnswer {
				t.Fatalf("AccountInfo: %v; want an answer: %v", err, tc.wantAnswer)
			}
		})
	}
}

// A worker started before NATS waits for it, saying so, instead of exiting;
// a tool (no StartupRetry) still fails at once.
func TestConnectWaitsForAServerThatStartsLater(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there until the server starts
	url := "nats://" + ln.Addr().String()

	log, logs := captureLogger()
	if _, err := natsconn.Connect(context.Background(), natsconn.Config{URL: url}, log); err == nil {
		t.Fatal("Connect without StartupRetry succeeded with nothing listening")
	}

	type result struct {
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := natsconn.Connect(context.Background(), natsconn.Config{URL: url, StartupRetry: time.Minute}, log)
		if nc != nil {
			nc.Close()
		}
		done <- result{err}
	}()
	// The server starts once Connect has said that it is waiting.
	poll.Until(t, 30*time.Second, "Connect to say it is retrying", func() bool {
		return strings.Contains(logs.String(), "NATS cannot be reached yet; retrying")
	})
	natstest.RunServer(t, func(o *server.Options) { o.Port = port })
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Connect with StartupRetry: %v, want connected once the server started", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Connect did not return within 30s of the server starting")
	}
}
