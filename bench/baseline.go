package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/internal/plainconsumer"
	"github.com/apiops-worker/apiops-worker/streams"
)

// roleEnv, set to "baseline", makes the bench binary the baseline consumer:
// it re-executes itself so that the baseline, like the worker, is measured as
// a process of its own.
const roleEnv = "BENCH_ROLE"

// runBaseline runs plainconsumer on the worker's durable consumer with
// BENCH_CONCURRENCY handlers, printing "ready" once it pulls. With
// BENCH_APINIZER_URL set it is the ceiling: each job also deletes its key
// from the simulator with one plain HTTP request.
func runBaseline(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	concurrency, err := strconv.Atoi(getenv("BENCH_CONCURRENCY"))
	if err != nil || concurrency < 1 {
		return fmt.Errorf("BENCH_CONCURRENCY=%q: want a positive number", getenv("BENCH_CONCURRENCY"))
	}
	nc, err := nats.Connect(getenv("NATS_URL"), nats.Name("bench-baseline"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		return err
	}
	var call plainconsumer.Call
	if url := getenv("BENCH_APINIZER_URL"); url != "" {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}, Timeout: 10 * time.Second}
		call = plainconsumer.DeleteKey(client, url, project, token, keyName)
	}
	return plainconsumer.Run(ctx, js, cons, concurrency, call, func() { fmt.Fprintln(stdout, "ready") })
}
