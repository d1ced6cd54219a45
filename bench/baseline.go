package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// roleEnv, set to "baseline", makes the bench binary the baseline consumer:
// it re-executes itself so that the baseline, like the worker, is measured as
// a process of its own.
const roleEnv = "BENCH_ROLE"

// runBaseline is the plain nats.go consumer the worker is compared with: on
// the same durable consumer and with the same concurrency it does the
// worker's message work and nothing else: take a job, publish a small result
// with its Nats-Msg-Id and wait for JetStream's acknowledgement, ack the
// job. No decoding, no Apinizer call, no bookkeeping.
//
// With BENCH_APINIZER_URL set it is the ceiling instead: the same, plus one
// keep-alive HTTP DELETE of the job's key to the simulator before the
// result, which is the least any worker must add. Jobs are told apart by
// their message id, <prefix>-<i>, whose key is key-<i>.
func runBaseline(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	concurrency, err := strconv.Atoi(getenv("BENCH_CONCURRENCY"))
	if err != nil || concurrency < 1 {
		return fmt.Errorf("BENCH_CONCURRENCY=%q: want a positive number", getenv("BENCH_CONCURRENCY"))
	}
	apinizer := getenv("BENCH_APINIZER_URL")
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}, Timeout: 10 * time.Second}
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
	iter, err := cons.Messages(jetstream.PullMaxMessages(concurrency))
	if err != nil {
		return err
	}
	defer iter.Stop()
	fmt.Fprintln(stdout, "ready")

	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for msg := range msgs {
				id := msg.Headers().Get(nats.MsgIdHdr)
				if apinizer != "" {
					if err := deleteKey(ctx, httpClient, apinizer, id); err != nil {
						fmt.Fprintln(os.Stderr, "bench ceiling:", err)
						_ = msg.Nak()
						continue
					}
				}
				res := nats.NewMsg(jobs.ResultSubject(msg.Subject()))
				res.Data = []byte(`{"jobId":"` + id + `","status":"succeeded"}`)
				res.Header.Set(nats.MsgIdHdr, jobs.ResultMsgID(id))
				if _, err := js.PublishMsg(ctx, res); err != nil {
					_ = msg.Nak()
					continue
				}
				_ = msg.Ack()
			}
		})
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	for {
		msg, err := iter.Next()
		if err != nil {
			close(msgs)
			wg.Wait()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		msgs <- msg
	}
}

// deleteKey makes the ceiling's Apinizer call for job id <prefix>-<i>: the
// simulator's key delete of key-<i>.
func deleteKey(ctx context.Context, c *http.Client, base, id string) error {
	i := strings.LastIndexByte(id, '-')
	n, err := strconv.Atoi(id[i+1:])
	if i < 0 || err != nil {
		return fmt.Errorf("message id %q: want <prefix>-<number>", id)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, base+"/apiops/projects/"+project+"/keys/"+keyName(n)+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE key-%d: %s", n, resp.Status)
	}
	return nil
}
