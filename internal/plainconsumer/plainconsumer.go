// Package plainconsumer is the yardstick the worker is measured against: a
// plain nats.go jetstream consumer doing a job message's NATS work and
// nothing else (take the message, publish a small result with its
// Nats-Msg-Id and wait for JetStream's acknowledgement, ack the message),
// optionally with one HTTP call per message: the least any worker that calls
// Apinizer must do.
package plainconsumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Call is done for each message before its result is published; an error
// naks the message.
type Call func(ctx context.Context, msg jetstream.Msg) error

// Run consumes cons with concurrency handlers until ctx ends, calling ready
// once messages are being pulled. call may be nil.
func Run(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, concurrency int, call Call, ready func()) error {
	iter, err := cons.Messages(jetstream.PullMaxMessages(concurrency))
	if err != nil {
		return err
	}
	defer iter.Stop()
	if ready != nil {
		ready()
	}
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for msg := range msgs {
				handle(ctx, js, msg, call)
			}
		})
	}
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
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

func handle(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, call Call) {
	if call != nil {
		if err := call(ctx, msg); err != nil {
			_ = msg.Nak()
			return
		}
	}
	id := msg.Headers().Get(nats.MsgIdHdr)
	res := nats.NewMsg(jobs.ResultSubject(msg.Subject()))
	res.Data = []byte(`{"jobId":"` + id + `","status":"succeeded"}`)
	res.Header.Set(nats.MsgIdHdr, jobs.ResultMsgID(id))
	if _, err := js.PublishMsg(ctx, res); err != nil {
		_ = msg.Nak()
		return
	}
	_ = msg.Ack()
}

// DeleteKey is a Call that deletes, through the APIOps API at baseURL, the
// key of project named after the message id: job <prefix>-<i> deletes key
// keyName(i). It reads no job body: a plain keep-alive HTTP request and
// nothing more.
func DeleteKey(client *http.Client, baseURL, project, token string, keyName func(int) string) Call {
	return func(ctx context.Context, msg jetstream.Msg) error {
		id := msg.Headers().Get(nats.MsgIdHdr)
		i := strings.LastIndexByte(id, '-')
		if i < 0 {
			return fmt.Errorf("message id %q: want <prefix>-<number>", id)
		}
		n, err := strconv.Atoi(id[i+1:])
		if err != nil {
			return fmt.Errorf("message id %q: want <prefix>-<number>", id)
		}
		key := keyName(n)
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, baseURL+"/apiops/projects/"+project+"/keys/"+key+"/", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("DELETE %s: %s", key, resp.Status)
		}
		return nil
	}
}
