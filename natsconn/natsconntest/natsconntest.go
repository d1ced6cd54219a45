// Package natsconntest holds, for tests, each way a NATS server can demand
// that clients prove who they are: the server options that require it, the
// natsconn settings that satisfy it, settings that do not, and the secrets
// neither errors nor logs may show. natsconn's tests and the commands' tests
// run against servers built from them.
package natsconntest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/natsconn"
)

// Auth is one way of authenticating. Good and Bad carry only the
// authentication and TLS settings; the test adds the server's URL.
type Auth struct {
	Name string
	// Server makes a server require this way (pass it to natstest.RunServer).
	Server func(*server.Options)
	// Good satisfies the server, Bad holds a wrong credential of the same
	// kind.
	Good, Bad natsconn.Config
	// Secrets maps a description to a secret of Good or Bad.
	Secrets map[string]string
}

// All is every way of authenticating, one Auth each.
func All(tb testing.TB) []Auth {
	return []Auth{UserPassword(), Token(), NKey(tb), Creds(tb), TLS(tb), MutualTLS(tb)}
}

// UserPassword requires a user name and password.
func UserPassword() Auth {
	const password = "nats-password-1f9c2e-DO-NOT-LEAK"
	const wrong = "wrong-password-8d31a0-DO-NOT-LEAK"
	return Auth{
		Name: "user and password",
		Server: func(o *server.Options) {
			o.Users = []*server.User{{Username: "apiops-worker", Password: password}}
		},
		Good:    natsconn.Config{User: "apiops-worker", Password: password},
		Bad:     natsconn.Config{User: "apiops-worker", Password: wrong},
		Secrets: map[string]string{"password": password, "wrong password": wrong},
	}
}

// Token requires an authorization token.
func Token() Auth {
	const token = "nats-token-6b0e44-DO-NOT-LEAK"
	const wrong = "wrong-token-a7c2d9-DO-NOT-LEAK"
	return Auth{
		Name:    "token",
		Server:  func(o *server.Options) { o.Authorization = token },
		Good:    natsconn.Config{Token: token},
		Bad:     natsconn.Config{Token: wrong},
		Secrets: map[string]string{"token": token, "wrong token": wrong},
	}
}

// NKey requires a user NKey; Bad is the seed of a user the server does not
// know.
func NKey(tb testing.TB) Auth {
	tb.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		tb.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	return Auth{
		Name:    "NKey seed file",
		Server:  func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
		Good:    natsconn.Config{NKeySeedFile: WriteFile(tb, "worker.nk", seed)},
		Bad:     natsconn.Config{NKeySeedFile: WriteFile(tb, "other.nk", otherSeed)},
		Secrets: map[string]string{"NKey seed": string(seed), "unknown NKey seed": string(otherSeed)},
	}
}

// Creds runs the server in operator mode with a memory resolver holding one
// account; Good is a .creds file of a user of that account, Bad one of a
// user of an account the server does not know. The server has no
// JetStream: accounts would need JetStream limits, and authentication is
// what is tested.
func Creds(tb testing.TB) Auth {
	tb.Helper()
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(operator)
	if err != nil {
		tb.Fatal(err)
	}
	opDecoded, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		tb.Fatal(err)
	}

	creds := func(name string) (file, userJWT, userSeed, accPub, accJWT string) {
		account, _ := nkeys.CreateAccount()
		accPub, _ = account.PublicKey()
		accJWT, err := jwt.NewAccountClaims(accPub).Encode(operator)
		if err != nil {
			tb.Fatal(err)
		}
		user, _ := nkeys.CreateUser()
		userPub, _ := user.PublicKey()
		seed, _ := user.Seed()
		uc := jwt.NewUserClaims(userPub)
		uc.Name = "apiops-worker"
		userJWT, err = uc.Encode(account)
		if err != nil {
			tb.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(userJWT, seed)
		if err != nil {
			tb.Fatal(err)
		}
		return WriteFile(tb, name, b), userJWT, string(seed), accPub, accJWT
	}
	goodFile, goodJWT, goodSeed, accPub, accJWT := creds("worker.creds")
	badFile, badJWT, badSeed, _, _ := creds("stranger.creds")
	return Auth{
		Name: "operator mode .creds file",
		Server: func(o *server.Options) {
			resolver := &server.MemAccResolver{}
			if err := resolver.Store(accPub, accJWT); err != nil {
				tb.Fatal(err)
			}
			o.TrustedOperators = []*jwt.OperatorClaims{opDecoded}
			o.AccountResolver = resolver
			o.JetStream = false
		},
		Good: natsconn.Config{CredsFile: goodFile},
		Bad:  natsconn.Config{CredsFile: badFile},
		Secrets: map[string]string{
			"user JWT": goodJWT, "user seed": goodSeed,
			"unknown user JWT": badJWT, "unknown user seed": badSeed,
		},
	}
}

// MutualTLS requires TLS with a client certificate issued by a private CA;
// Bad presents a certificate from another CA.
func MutualTLS(tb testing.TB) Auth {
	tb.Helper()
	a, ca := serverTLS(tb, "TLS with a client certificate")
	clientCert, clientKey, err := ca.Issue("apiops-worker")
	if err != nil {
		tb.Fatal(err)
	}
	rogue, _ := selfsigned.NewCA("rogue CA")
	rogueCert, rogueKey, _ := rogue.Issue("apiops-worker")

	serverOnly := a.Server
	a.Server = func(o *server.Options) {
		serverOnly(o)
		o.TLSVerify = true
		o.TLSConfig.ClientCAs = ca.Pool()
		o.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
	}
	a.Good.TLSCertFile = WriteFile(tb, "client.pem", clientCert)
	a.Good.TLSKeyFile = WriteFile(tb, "client-key.pem", clientKey)
	a.Bad.TLSCAFile = a.Good.TLSCAFile // the server is trusted; the client is not
	a.Bad.TLSCertFile = WriteFile(tb, "rogue.pem", rogueCert)
	a.Bad.TLSKeyFile = WriteFile(tb, "rogue-key.pem", rogueKey)
	a.Secrets = map[string]string{"client key": PEMBody(clientKey), "rogue client key": PEMBody(rogueKey)}
	return a
}

// TLS requires TLS with a server certificate issued by a private CA and no
// client certificate; Good trusts that CA, Bad another one.
func TLS(tb testing.TB) Auth {
	tb.Helper()
	a, _ := serverTLS(tb, "TLS with a private CA")
	return a
}

func serverTLS(tb testing.TB, name string) (Auth, *selfsigned.CA) {
	tb.Helper()
	ca, err := selfsigned.NewCA("apiops test NATS CA")
	if err != nil {
		tb.Fatal(err)
	}
	serverCert, serverKey, err := ca.Issue("nats", "127.0.0.1", "localhost")
	if err != nil {
		tb.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		tb.Fatal(err)
	}
	other, err := selfsigned.NewCA("another CA")
	if err != nil {
		tb.Fatal(err)
	}
	return Auth{
		Name: name,
		Server: func(o *server.Options) {
			o.TLS = true
			o.TLSTimeout = 5
			o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
		},
		Good:    natsconn.Config{TLSCAFile: WriteFile(tb, "ca.pem", ca.PEM)},
		Bad:     natsconn.Config{TLSCAFile: WriteFile(tb, "other-ca.pem", other.PEM)},
		Secrets: map[string]string{"server key": PEMBody(serverKey)},
	}, ca
}

// PEMBody is the first base64 line of a PEM block: a string that appears
// nowhere unless the block itself was copied.
func PEMBody(p []byte) string {
	lines := strings.Split(string(p), "\n")
	if len(lines) < 2 {
		return string(p)
	}
	return lines[1]
}

// CaptureLogger logs everything, debug included, to the returned buffer.
func CaptureLogger() (*slog.Logger, *capture.Buffer) {
	buf := &capture.Buffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// Conn connects to the server at url with a's good settings, for the
// test's own setup; the connection is closed by the test's cleanup.
func (a Auth) Conn(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	cfg := a.Good
	cfg.URL = url
	nc, err := natsconn.Connect(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("natsconntest: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// AssertNoSecret fails the test if any secret occurs in text, naming where
// it was found but never printing the secret itself.
func AssertNoSecret(tb testing.TB, where, text string, secrets map[string]string) {
	tb.Helper()
	for name, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			tb.Errorf("LEAK: the %s appears in %s", name, where)
		}
	}
}

// WriteFile writes data to a file of a temporary directory and returns its
// path.
func WriteFile(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}
