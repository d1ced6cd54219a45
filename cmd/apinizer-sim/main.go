// Command apinizer-sim serves the Apinizer simulator (package
// executor/apinizertest) over HTTP: the APIOps endpoints the worker calls,
// backed by in-memory state, for local runs and container tests.
//
// Besides the APIOps paths it serves:
//
//	GET /healthz        200 once serving
//	POST /apiops/auth/token  client credentials, with --client-id
//	GET /_sim/requests  the request log as JSON, Authorization values redacted
//	GET /_sim/state     resources and the Applied/MaxInFlight counters as JSON
//
// Without --seed it starts with project MyProject (environments production
// and staging) holding certificate my-certificate, key my-key and credential
// api-user with a public key. A seed file has the shape of /_sim/state, so
// a saved state can be replayed; of a certificate only name and pem are
// read, and the counters are ignored:
//
//	{"projects": [{"name": "P", "environments": ["production"],
//	  "certificates": [{"name": "c", "pem": "..."}], "keys": ["k"],
//	  "credentials": [{"username": "u", "hasPublicKey": true}]}]}
//
// --seed-expiring 5,20,400 adds certificates of chosen validity to the
// seed's first project, for the certificate inventory to report.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "apinizer-sim:", err)
		}
		os.Exit(2)
	}
}

// shutdownTimeout bounds the wait for requests in progress at shutdown;
// requests held by a latency or a hang are then cut.
const shutdownTimeout = 5 * time.Second

// run serves until ctx ends. It prints "listening on <addr>" to stdout once
// the listener is bound, so that a caller using port 0 learns the port.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apinizer-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "listen `address`")
	token := fs.String("token", "", "bearer `token` every request must carry; empty accepts any non-empty token")
	// A file, for deployments: an argument shows in ps to every user.
	tokenFile := fs.String("token-file", "", "`file` holding the bearer token (instead of --token)")
	latency := fs.Duration("latency", 0, "delay before every APIOps answer")
	seedFile := fs.String("seed", "", "JSON `file` of projects and resources to start with (default: the built-in MyProject seed)")
	style := fs.String("style", "classic", `which Apinizer to answer as: "classic" or "old" (the seeds' revision: {"success": true}, environmentResults), "pods" ({"status": "SUCCESS"}, detailList, the seeds' texts), or "current" or "new" (the apinizer-docs revision: its exact texts, 400 for every refusal, 400 for removing a public key that is not assigned)`)
	clientID := fs.String("client-id", "", "enables POST /apiops/auth/token (client credentials) for this client `id`; needs --client-secret-file")
	clientSecretFile := fs.String("client-secret-file", "", "`file` holding the client secret for --client-id")
	tokenTTL := fs.Duration("token-ttl", apinizertest.DefaultTokenTTL, "lifetime of the tokens POST /apiops/auth/token issues")
	seedExpiringDays := fs.String("seed-expiring", "", "comma-separated whole `days` left, e.g. 5,20,400 (negative: expired): one certificate each, expires-in-<N>d or expired-<N>d-ago, in every environment of the seed's first project")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var rs apinizertest.ResponseStyle
	switch *style {
	case "classic", "old":
		rs = apinizertest.StyleClassic
	case "pods":
		rs = apinizertest.StylePods
	case "current", "new":
		rs = apinizertest.StyleCurrent
	default:
		return fmt.Errorf("--style must be classic (old), pods or current (new), got %q", *style)
	}
	if *tokenFile != "" {
		if *token != "" {
			return errors.New("--token and --token-file exclude each other")
		}
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		if *token = strings.TrimSpace(string(b)); *token == "" {
			return fmt.Errorf("--token-file %s is empty", *tokenFile)
		}
	}
	if (*clientID == "") != (*clientSecretFile == "") {
		return errors.New("--client-id and --client-secret-file go together")
	}
	expiring, err := parseExpiring(*seedExpiringDays)
	if err != nil {
		return err
	}
	if *tokenTTL <= 0 {
		return fmt.Errorf("--token-ttl must be positive, got %s", *tokenTTL)
	}
	var clientSecret string
	if *clientSecretFile != "" {
		b, err := os.ReadFile(*clientSecretFile)
		if err != nil {
			return fmt.Errorf("--client-secret-file: %w", err)
		}
		if clientSecret = strings.TrimSpace(string(b)); clientSecret == "" {
			return fmt.Errorf("--client-secret-file %s is empty", *clientSecretFile)
		}
	}

	log := slog.New(slog.NewJSONHandler(stderr, nil))
	sim := apinizertest.New(apinizertest.Config{
		Token: *token, Latency: *latency, Logger: log, Style: rs,
		ClientID: *clientID, ClientSecret: clientSecret, TokenTTL: *tokenTTL,
	})
	seed := defaultSeed()
	if *seedFile != "" {
		var err error
		if seed, err = readSeed(*seedFile); err != nil {
			return err
		}
	}
	for _, p := range seed.Projects {
		sim.AddProject(p.Name, p.Environments...)
		for _, c := range p.Certificates {
			sim.AddCertificate(p.Name, c.Name, c.PEM)
		}
		for _, k := range p.Keys {
			sim.AddKey(p.Name, k)
		}
		for _, c := range p.Credentials {
			sim.AddCredential(p.Name, c.Username, c.HasPublicKey)
		}
	}
	if len(expiring) > 0 {
		if len(seed.Projects) == 0 {
			return errors.New("--seed-expiring: the seed has no project to put the certificates in")
		}
		if err := seedExpiring(sim, seed.Projects[0], expiring, time.Now()); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler(sim),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("apinizer simulator serving", "addr", ln.Addr().String(), "projects", len(seed.Projects), "style", *style)
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Requests still held: closing their connections ends them.
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handler serves the control endpoints and passes everything else to the
// simulator. It does not use http.ServeMux, which would clean and redirect
// the paths the simulator must see as sent.
func handler(sim *apinizertest.Simulator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			sim.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			_, _ = io.WriteString(w, "ok\n")
		case "/_sim/requests":
			reqs := sim.Requests()
			for i := range reqs {
				if reqs[i].Header.Get("Authorization") != "" {
					reqs[i].Header.Set("Authorization", "REDACTED")
				}
			}
			writeJSON(w, reqs)
		case "/_sim/state":
			writeJSON(w, sim.State())
		default:
			sim.ServeHTTP(w, r)
		}
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// seed is the resources the simulator starts with, in the shape of
// /_sim/state.
type seed struct {
	Projects []apinizertest.ProjectState `json:"projects"`
}

func defaultSeed() seed {
	return seed{Projects: []apinizertest.ProjectState{{
		Name:         "MyProject",
		Environments: []string{"production", "staging"},
		Certificates: []apinizertest.Certificate{{Name: "my-certificate"}},
		Keys:         []string{"my-key"},
		Credentials:  []apinizertest.Credential{{Username: "api-user", HasPublicKey: true}},
	}}}
}

func readSeed(path string) (seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return seed{}, fmt.Errorf("seed: %w", err)
	}
	var s seed
	if err := json.Unmarshal(b, &s); err != nil {
		return seed{}, fmt.Errorf("seed %s: %w", path, err)
	}
	return s, nil
}
