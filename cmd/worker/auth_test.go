package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/natstest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// captureLogger logs everything, debug included, to the returned buffer.
func captureLogger() (*slog.Logger, *capture.Buffer) {
	buf := &capture.Buffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// assertNoSecret fails the test if any secret occurs in text, naming where
// it was found but never printing the secret itself.
func assertNoSecret(t testing.TB, where, text string, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("LEAK: the %s appears in %s", name, where)
		}
	}
}

func writeTestFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// authCase is one NATS authentication method: the server options that
// require it, the configuration that satisfies it, one that does not, and
// the secrets neither error strings nor logs may contain.
type authCase struct {
	name    string
	server  func(*server.Options)
	good    func(c *config)
	bad     func(c *config)
	secrets map[string]string
}

func userPasswordCase() authCase {
	const password = "nats-password-1f9c2e-DO-NOT-LEAK"
	const wrong = "wrong-password-8d31a0-DO-NOT-LEAK"
	return authCase{
		name: "user and password",
		server: func(o *server.Options) {
			o.Users = []*server.User{{Username: "apiops-worker", Password: password}}
		},
		good:    func(c *config) { c.natsUser, c.natsPassword = "apiops-worker", password },
		bad:     func(c *config) { c.natsUser, c.natsPassword = "apiops-worker", wrong },
		secrets: map[string]string{"password": password, "wrong password": wrong},
	}
}

func tokenCase() authCase {
	const token = "nats-token-6b0e44-DO-NOT-LEAK"
	const wrong = "wrong-token-a7c2d9-DO-NOT-LEAK"
	return authCase{
		name:    "token",
		server:  func(o *server.Options) { o.Authorization = token },
		good:    func(c *config) { c.natsToken = token },
		bad:     func(c *config) { c.natsToken = wrong },
		secrets: map[string]string{"token": token, "wrong token": wrong},
	}
}

func nkeyCase(t *testing.T) authCase {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	goodFile := writeTestFile(t, "worker.nk", seed)
	badFile := writeTestFile(t, "other.nk", otherSeed)
	return authCase{
		name:    "NKey seed file",
		server:  func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
		good:    func(c *config) { c.natsNKey = goodFile },
		bad:     func(c *config) { c.natsNKey = badFile },
		secrets: map[string]string{"NKey seed": string(seed), "unknown NKey seed": string(otherSeed)},
	}
}

// credsCase runs the server in operator mode with a memory resolver holding
// one account; the good .creds file is a user of that account, the bad one a
// user of an account the server does not know.
func credsCase(t *testing.T) authCase {
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	opDecoded, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}

	creds := func(registered bool) (file, userJWT, userSeed, accPub, accJWT string) {
		account, _ := nkeys.CreateAccount()
		accPub, _ = account.PublicKey()
		accJWT, err := jwt.NewAccountClaims(accPub).Encode(operator)
		if err != nil {
			t.Fatal(err)
		}
		user, _ := nkeys.CreateUser()
		userPub, _ := user.PublicKey()
		seed, _ := user.Seed()
		uc := jwt.NewUserClaims(userPub)
		uc.Name = "apiops-worker"
		userJWT, err = uc.Encode(account)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(userJWT, seed)
		if err != nil {
			t.Fatal(err)
		}
		name := "worker.creds"
		if !registered {
			name = "stranger.creds"
		}
		return writeTestFile(t, name, b), userJWT, string(seed), accPub, accJWT
	}
	goodFile, goodJWT, goodSeed, accPub, accJWT := creds(true)
	badFile, badJWT, badSeed, _, _ := creds(false)
	return authCase{
		name: "operator mode .creds file",
		server: func(o *server.Options) {
			resolver := &server.MemAccResolver{}
			if err := resolver.Store(accPub, accJWT); err != nil {
				t.Fatal(err)
			}
			o.TrustedOperators = []*jwt.OperatorClaims{opDecoded}
			o.AccountResolver = resolver
			o.JetStream = false // accounts would need JetStream limits; auth is what is tested
		},
		good: func(c *config) { c.natsCreds = goodFile },
		bad:  func(c *config) { c.natsCreds = badFile },
		secrets: map[string]string{
			"user JWT": goodJWT, "user seed": goodSeed,
			"unknown user JWT": badJWT, "unknown user seed": badSeed,
		},
	}
}

// tlsCase requires TLS with a client certificate issued by a private CA;
// the bad configuration presents a certificate from another CA.
func tlsCase(t *testing.T) authCase {
	ca, err := selfsigned.NewCA("apiops test NATS CA")
	if err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey, err := ca.Issue("nats", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := ca.Issue("apiops-worker")
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := selfsigned.NewCA("rogue CA")
	rogueCert, rogueKey, _ := rogue.Issue("apiops-worker")

	caFile := writeTestFile(t, "ca.pem", ca.PEM)
	certFile := writeTestFile(t, "client.pem", clientCert)
	keyFile := writeTestFile(t, "client-key.pem", clientKey)
	rogueCertFile := writeTestFile(t, "rogue.pem", rogueCert)
	rogueKeyFile := writeTestFile(t, "rogue-key.pem", rogueKey)
	return authCase{
		name: "TLS with a client certificate",
		server: func(o *server.Options) {
			o.TLS, o.TLSVerify = true, true
			o.TLSTimeout = 5
			o.TLSConfig = &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{pair},
				ClientCAs:    ca.Pool(),
				ClientAuth:   tls.RequireAndVerifyClientCert,
			}
		},
		good: func(c *config) { c.natsTLSCA, c.natsTLSCert, c.natsTLSKey = caFile, certFile, keyFile },
		bad:  func(c *config) { c.natsTLSCA, c.natsTLSCert, c.natsTLSKey = caFile, rogueCertFile, rogueKeyFile },
		secrets: map[string]string{
			"client key": pemBody(clientKey), "rogue client key": pemBody(rogueKey),
		},
	}
}

// pemBody is the first base64 line of a PEM block: a string that appears
// nowhere unless the block itself was copied.
func pemBody(p []byte) string {
	lines := strings.Split(string(p), "\n")
	if len(lines) < 2 {
		return string(p)
	}
	return lines[1]
}

func TestAuthEachNATSMethodConnectsAndAWrongCredentialIsRefusedWithoutLeaking(t *testing.T) {
	t.Parallel()
	for _, c := range []authCase{userPasswordCase(), tokenCase(), nkeyCase(t), credsCase(t), tlsCase(t)} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.RunServer(t, c.server)
			base := config{natsURL: srv.ClientURL()}

			t.Run("the right credential connects", func(t *testing.T) {
				log, logs := captureLogger()
				cfg := base
				c.good(&cfg)
				nc, err := connectNATS(cfg, log)
				if err != nil {
					assertNoSecret(t, "the connect error", err.Error(), c.secrets)
					t.Fatalf("connectNATS: %v", err)
				}
				defer nc.Close()
				if err := nc.Flush(); err != nil {
					t.Fatalf("round trip: %v", err)
				}
				nc.Close()
				assertNoSecret(t, "the log", logs.String(), c.secrets)
			})

			t.Run("a wrong credential is refused and not echoed", func(t *testing.T) {
				log, logs := captureLogger()
				cfg := base
				c.bad(&cfg)
				nc, err := connectNATS(cfg, log)
				if err == nil {
					nc.Close()
					t.Fatal("connectNATS succeeded with a wrong credential")
				}
				assertNoSecret(t, "the connect error", err.Error(), c.secrets)
				assertNoSecret(t, "the log", logs.String(), c.secrets)
			})

			t.Run("no credential is refused", func(t *testing.T) {
				log, _ := captureLogger()
				nc, err := connectNATS(base, log)
				if err == nil {
					nc.Close()
					t.Fatal("connectNATS succeeded without credentials")
				}
			})
		})
	}
}

func TestAuthUnreadableCredentialFilesFailNamingTheVariable(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	const secret = "SUAGARBAGE-not-a-seed-but-secret-5e1d"
	garbage := writeTestFile(t, "garbage", []byte(secret+"\n"))
	for _, tc := range []struct {
		name string
		cfg  func(*config)
		want string
	}{
		{"a missing NKey seed file", func(c *config) { c.natsNKey = filepath.Join(t.TempDir(), "absent.nk") }, "NATS_NKEY"},
		{"an NKey seed file holding no seed", func(c *config) { c.natsNKey = garbage }, "NATS_NKEY"},
		{"a .creds file holding no credentials", func(c *config) { c.natsCreds = garbage }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config{natsURL: srv.ClientURL()}
			tc.cfg(&cfg)
			log, logs := captureLogger()
			nc, err := connectNATS(cfg, log)
			if err == nil {
				nc.Close()
				t.Fatal("connectNATS succeeded")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
			assertNoSecret(t, "the connect error", err.Error(), map[string]string{"file content": secret})
			assertNoSecret(t, "the log", logs.String(), map[string]string{"file content": secret})
		})
	}
}

// workerPermissions is the least-privilege permission set of a worker that
// provisions its topology (as in deploy/compose/nats-auth.conf).
func workerPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			// runtime
			"apiops.results.>", "apiops.dlq.>",
			"$JS.API.STREAM.INFO.APIOPS_JOBS", "$JS.API.STREAM.INFO.APIOPS_RESULTS", "$JS.API.STREAM.INFO.APIOPS_DLQ",
			"$JS.API.STREAM.INFO.APIOPS_ADVISORIES", "$JS.API.STREAM.INFO.KV_apiops_ledger",
			"$JS.API.CONSUMER.INFO.APIOPS_JOBS.apiops-worker", "$JS.API.CONSUMER.MSG.NEXT.APIOPS_JOBS.apiops-worker",
			"$JS.API.CONSUMER.INFO.APIOPS_ADVISORIES.apiops-worker-advisories",
			"$JS.API.CONSUMER.MSG.NEXT.APIOPS_ADVISORIES.apiops-worker-advisories",
			"$JS.API.CONSUMER.PAUSE.APIOPS_JOBS.apiops-worker",
			"$JS.ACK.APIOPS_JOBS.apiops-worker.>", "$JS.ACK.APIOPS_ADVISORIES.apiops-worker-advisories.>",
			"$JS.API.STREAM.MSG.GET.APIOPS_JOBS", "$JS.API.STREAM.MSG.DELETE.APIOPS_JOBS",
			"$KV.apiops_ledger.>",
			"$JS.API.DIRECT.GET.KV_apiops_ledger", "$JS.API.DIRECT.GET.KV_apiops_ledger.>",
			"$JS.API.STREAM.MSG.GET.KV_apiops_ledger",
			// provisioning
			"$JS.API.STREAM.CREATE.APIOPS_JOBS", "$JS.API.STREAM.UPDATE.APIOPS_JOBS",
			"$JS.API.STREAM.CREATE.APIOPS_RESULTS", "$JS.API.STREAM.UPDATE.APIOPS_RESULTS",
			"$JS.API.STREAM.CREATE.APIOPS_DLQ", "$JS.API.STREAM.UPDATE.APIOPS_DLQ",
			"$JS.API.STREAM.CREATE.APIOPS_ADVISORIES", "$JS.API.STREAM.UPDATE.APIOPS_ADVISORIES",
			"$JS.API.STREAM.CREATE.KV_apiops_ledger", "$JS.API.STREAM.UPDATE.KV_apiops_ledger",
			"$JS.API.CONSUMER.CREATE.APIOPS_JOBS.apiops-worker",
			"$JS.API.CONSUMER.CREATE.APIOPS_ADVISORIES.apiops-worker-advisories",
			"$JS.API.INFO",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// TestAuthWorkerBinaryRunsAgainstAnAuthenticatedServerAndPicksUpARotatedToken
// runs the worker's whole path (run: configuration, NATS authentication,
// provisioning, the consume loop, the Apinizer call) against a server that
// requires a password and grants only the worker's permissions, and rotates
// the token file while it runs.
func TestAuthWorkerBinaryRunsAgainstAnAuthenticatedServerAndPicksUpARotatedToken(t *testing.T) {
	t.Parallel()
	const (
		workerPassword = "worker-password-93be1c-DO-NOT-LEAK"
		adminPassword  = "admin-password-0c6f7a-DO-NOT-LEAK"
		firstToken     = "apinizer-token-first-4d2b-DO-NOT-LEAK"
		secondToken    = "apinizer-token-second-rotated-77e0-DO-NOT-LEAK"
	)
	srv := natstest.RunServer(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "apiops-worker", Password: workerPassword, Permissions: workerPermissions()},
			{Username: "admin", Password: adminPassword},
		}
	})
	sim := apinizertest.NewServer(apinizertest.Config{Token: ""}) // any non-empty token
	t.Cleanup(sim.Close)
	sim.AddProject("MyProject", "production")
	sim.AddKey("MyProject", "first-key")
	sim.AddKey("MyProject", "second-key")

	tokenPath := writeTestFile(t, "apinizer-token", []byte(firstToken+"\n"))
	env := map[string]string{
		"NATS_URL":            srv.ClientURL(),
		"NATS_USER":           "apiops-worker",
		"NATS_PASSWORD":       workerPassword,
		"APINIZER_URL":        sim.URL,
		"APINIZER_TOKEN_FILE": tokenPath,
		"METRICS_ADDR":        "127.0.0.1:0",
		"LOG_LEVEL":           "debug",
		"WORKER_ACK_WAIT":     "5s",
		"WORKER_LEASE":        "10s",
	}
	var stdout, stderr capture.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &stdout, &stderr) }()

	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("admin", adminPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The worker provisions the streams; wait for the consumer it binds to.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, cancelInfo := context.WithTimeout(ctx, time.Second)
		_, err := js.Consumer(c, streams.Jobs, streams.Consumer)
		cancelInfo()
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before provisioning: %v\nlog:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not provision its consumer within 20s: %v\nlog:\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	rc, err := js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	await := func(job jobs.Job) {
		t.Helper()
		c, cancelPub := context.WithTimeout(ctx, 20*time.Second)
		defer cancelPub()
		if _, err := jobs.Publish(c, js, job); err != nil {
			t.Fatal(err)
		}
		msg, err := rc.Next(jetstream.FetchContext(c))
		if err != nil {
			t.Fatalf("no result for %s: %v\nlog:\n%s", job.ID(), err, stderr.String())
		}
		var r jobs.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			t.Fatal(err)
		}
		if r.JobID != job.ID() || r.Status != jobs.StatusSucceeded {
			t.Fatalf("result %s %s %+v, want %s succeeded", r.JobID, r.Status, r.Error, job.ID())
		}
		assertNoSecret(t, "a result", string(msg.Data()), map[string]string{"first token": firstToken, "second token": secondToken})
	}
	lastAuthorization := func() string {
		reqs := sim.Requests()
		if len(reqs) == 0 {
			t.Fatal("the simulator received no request")
		}
		return reqs[len(reqs)-1].Header.Get("Authorization")
	}

	await(&jobs.KeyDelete{JobID: "auth-run-first", ProjectName: "MyProject", KeyName: "first-key"})
	if got := lastAuthorization(); got != "Bearer "+firstToken {
		t.Errorf("first call did not carry the token from the file")
	}

	// Rotate: a new token of a different size, so the change is seen even
	// on a file system with a coarse modification time.
	if err := os.WriteFile(tokenPath, []byte(secondToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	await(&jobs.KeyDelete{JobID: "auth-run-second", ProjectName: "MyProject", KeyName: "second-key"})
	if got := lastAuthorization(); got != "Bearer "+secondToken {
		t.Errorf("the call after the rotation did not carry the new token (it carried the old one: %t)", got == "Bearer "+firstToken)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after cancellation, want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not return within 60s of cancellation")
	}
	if !strings.Contains(stderr.String(), "worker stopped") {
		t.Errorf("the log has no \"worker stopped\" line:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "Permissions Violation") || strings.Contains(stderr.String(), "permissions violation") {
		t.Errorf("the worker hit a permissions violation with its least-privilege user:\n%s", stderr.String())
	}
	secrets := map[string]string{
		"NATS password": workerPassword, "admin password": adminPassword,
		"first Apinizer token": firstToken, "second Apinizer token": secondToken,
	}
	assertNoSecret(t, "the worker's log", stderr.String(), secrets)
	assertNoSecret(t, "the worker's stdout", stdout.String(), secrets)
}
