// Command worker consumes apiops jobs from NATS JetStream, applies them to
// Apinizer through its APIOps endpoints, and publishes one result per job.
//
// Configuration comes from environment variables, each with a flag that
// overrides it; run with -h for the list. Built with the dev tag (make run),
// --dev starts an embedded NATS server and the Apinizer simulator instead of
// connecting to real ones; the production build carries neither.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/inventory"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/metrics"
	"github.com/apiops-worker/apiops-worker/natsconn"
	"github.com/apiops-worker/apiops-worker/stranded"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h or --version, written to stdout
	}
	if err != nil {
		return err
	}
	level, _ := parseLevel(cfg.logLevel)
	var handler slog.Handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.logFormat == "text" {
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)

	var dev *devEnv
	if cfg.dev {
		if dev, err = startDev(cfg, log); err != nil {
			return err
		}
		defer dev.close()
		cfg = dev.cfg
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)

	nc, err := connectNATS(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if cfg.provision {
		// Provision resets what differs without a word: say what it resets.
		drift, err := streams.Drift(setupCtx, js, cfg.topo)
		if err != nil {
			log.Warn("could not compare the JetStream objects with the configuration", "err", err)
		}
		for _, d := range drift {
			log.Warn("provisioning resets a setting that differs from the configuration", "difference", d)
		}
		if err := streams.Provision(setupCtx, js, cfg.topo); err != nil {
			return err
		}
	} else if err := streams.Verify(setupCtx, js); err != nil {
		return err
	}
	cons, err := js.Consumer(setupCtx, streams.Jobs, streams.Consumer)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", streams.Consumer, err)
	}
	kv, err := js.KeyValue(setupCtx, streams.LedgerBucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", streams.LedgerBucket, err)
	}
	cancel()

	owner, _ := os.Hostname()
	owner = fmt.Sprintf("%s-%d-%d", owner, os.Getpid(), time.Now().UnixNano()%1e6)
	led, err := ledger.New(kv, ledger.Config{Owner: owner, Lease: cfg.lease})
	if err != nil {
		return err
	}

	apinizerTLS, err := cfg.apinizerTLS()
	if err != nil {
		return err
	}
	retry := executor.DefaultRetryPolicy()
	retry.MaxElapsedTime = cfg.retryBudget
	ecfg := executor.Config{
		BaseURL:           cfg.apinizerURL,
		Concurrency:       cfg.worker.Concurrency,
		AttemptTimeout:    cfg.attemptTimeout,
		Retry:             retry,
		WrapTransport:     m.InstrumentRoundTripper,
		TLS:               apinizerTLS,
		AllowInsecureHTTP: cfg.allowInsecureHTTP,
		// Results of certificate writes carry what Apinizer serves
		// afterwards (live), at one GET per write.
		ReadBackWrites: true,
	}
	cfg.apinizerAuth(&ecfg)
	if cfg.ageIdentityFile != "" {
		// Read once at start-up: a rotation adds a line and restarts the
		// workers, keeping the old identity until no job needs it.
		if ecfg.Identities, err = executor.LoadIdentities(cfg.ageIdentityFile); err != nil {
			return fmt.Errorf("WORKER_AGE_IDENTITY_FILE (--age-identity-file): %w", err)
		}
	}
	exec, err := executor.New(ecfg)
	if err != nil {
		return err
	}
	defer exec.CloseIdleConnections()
	inv, err := startInventory(ctx, cfg, exec, js, reg, log)
	if err != nil {
		return err
	}
	wcfg := cfg.worker
	wcfg.Ledger, wcfg.Logger, wcfg.Metrics = led, log, m
	if cfg.provision {
		// A stream, consumer or bucket deleted while the worker runs is
		// re-created at once, not only at the next start.
		wcfg.Topology = &cfg.topo
	}
	w, err := worker.New(wcfg, js, cons, exec)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.metricsAddr)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.named("METRICS_ADDR"), err)
	}
	srv := &http.Server{
		// A half-open connection still says connected: readiness asks the
		// server for a round trip.
		Handler: routes(reg, func() error {
			if !nc.IsConnected() {
				return errors.New("NATS disconnected")
			}
			if err := w.Ready(); err != nil {
				return err
			}
			if err := nc.FlushTimeout(time.Second); err != nil {
				return fmt.Errorf("NATS does not answer: %w", err)
			}
			return nil
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	if cfg.pprof {
		pln, err := net.Listen("tcp", cfg.pprofAddr)
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.named("WORKER_PPROF_ADDR"), err)
		}
		psrv := &http.Server{Handler: profiles(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := psrv.Serve(pln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("profiles server stopped", "err", err)
			}
		}()
		defer psrv.Close()
		log.Info("serving Go's profiles", "pprof", "http://"+pln.Addr().String()+"/debug/pprof/")
	}
	metricsURL := "http://" + ln.Addr().String() + "/metrics"
	log.Info("worker started", "owner", owner, "metrics", metricsURL, "readyz", "http://"+ln.Addr().String()+"/readyz", "concurrency", cfg.worker.Concurrency, "apinizer", cfg.apinizerURL)

	var samples sync.WaitGroup
	if dev != nil {
		dev.banner(stdout, ln.Addr().String())
	}
	if dev != nil && cfg.samples {
		samples.Go(func() { dev.publishSamples(ctx, js, stdout, log) })
	}

	var invErr error
	if inv != nil {
		samples.Go(func() { invErr = inv.Run(ctx) })
	}
	if cfg.strandedInterval > 0 {
		watch, err := stranded.NewWatch(stranded.Config{Interval: cfg.strandedInterval}, js, kv, m, log.With("component", "stranded-check"))
		if err != nil {
			return err
		}
		samples.Go(func() { watch.Run(ctx) })
	}
	runErr := w.Run(ctx)
	samples.Wait()
	if invErr != nil {
		log.Error("certificate inventory stopped", "err", invErr)
	}
	log.Info("worker stopping: draining NATS connection")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := drain(shutdownCtx, nc); err != nil {
		log.Warn("NATS drain did not finish", "err", err)
	}
	log.Info("worker stopped")
	return runErr
}

// startInventory builds the certificate inventory when projects are named
// (provisioning its stream and bucket when provisioning is on); nil when
// the inventory is off.
func startInventory(ctx context.Context, cfg config, exec *executor.Client, js jetstream.JetStream, reg prometheus.Registerer, log *slog.Logger) (*inventory.Inventory, error) {
	if len(cfg.inventory.Projects) == 0 {
		return nil, nil
	}
	if cfg.provision {
		setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := streams.ProvisionInventory(setupCtx, js, cfg.topo); err != nil {
			return nil, err
		}
	}
	inv, err := inventory.New(cfg.inventory, exec, js, reg, log.With("component", "inventory"))
	if err != nil {
		return nil, fmt.Errorf("APINIZER_INVENTORY_* (--inventory-*): %w", err)
	}
	return inv, nil
}

// connectNATS connects as cfg says, naming the variable at fault in an
// error.
func connectNATS(ctx context.Context, cfg config, log *slog.Logger) (*nats.Conn, error) {
	nc, err := natsconn.Connect(ctx, cfg.nats, log)
	return nc, natsconn.Rename(err, cfg.natsNames())
}

// drain closes the connection after flushing what is in flight (acks, naks,
// results), bounded by ctx.
func drain(ctx context.Context, nc *nats.Conn) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		return err
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
