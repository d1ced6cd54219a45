package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testTimeout bounds the NATS conversation of one test step, container start-up excluded.
const testTimeout = 30 * time.Second

// connectNATS connects the test process to url; the connection is closed when the test ends.
func connectNATS(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(t.Name()), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// jetStream returns a JetStream context on a new connection to url.
func jetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(connectNATS(t, url))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

func TestNATSContainerServesJetStream(t *testing.T) {
	t.Parallel()
	node := startNATS(t, startNetwork(t), "nats-1")
	js := jetStream(t, node.HostURL(t))

	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "IMAGE_CHECK",
		Subjects: []string{"image.check.>"},
		// File storage: the store is the /data volume, the only writable path of the
		// read-only container.
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}

	const body = `{"jobId":"image-check-1"}`
	ack, err := js.Publish(ctx, "image.check.one", []byte(body), jetstream.WithMsgID("image-check-1"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Stream != "IMAGE_CHECK" || ack.Sequence != 1 {
		t.Fatalf("publish ack = stream %q seq %d, want stream IMAGE_CHECK seq 1", ack.Stream, ack.Sequence)
	}

	consumer, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:   "image-check",
		AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	msg, err := consumer.Next(jetstream.FetchContext(ctx))
	if err != nil {
		t.Fatalf("next message: %v", err)
	}
	if got := string(msg.Data()); got != body {
		t.Errorf("message body = %q, want %q", got, body)
	}
	if got := msg.Subject(); got != "image.check.one" {
		t.Errorf("message subject = %q, want image.check.one", got)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
}

// TestNATSNodeSurvivesChaosHelpers exercises the helpers the chaos suites rely on against
// one node: each disruption must take effect and be undone, and JetStream data must outlive
// a restart (it lives on the /data volume, not in the container's read-only layer).
func TestNATSNodeSurvivesChaosHelpers(t *testing.T) {
	t.Parallel()
	nw := startNetwork(t)
	node := startNATS(t, nw, "nats-chaos")

	ctx, cancel := context.WithTimeout(t.Context(), 3*testTimeout)
	defer cancel()

	js := jetStream(t, node.HostURL(t))
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "CHAOS",
		Subjects: []string{"chaos.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "chaos.before", []byte("kept")); err != nil {
		t.Fatalf("publish: %v", err)
	}

	t.Run("a paused node does not answer until unpaused", func(t *testing.T) {
		nc := connectNATS(t, node.HostURL(t))
		pauseContainer(t, node.Container)
		// A round trip cannot complete while the server is frozen.
		if err := nc.FlushTimeout(time.Second); err == nil {
			t.Fatal("flush succeeded against a paused server")
		}
		unpauseContainer(t, node.Container)
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			t.Fatalf("flush after unpause: %v", err)
		}
	})

	t.Run("a node cut off the network is unreachable until reconnected", func(t *testing.T) {
		url := node.HostURL(t)
		disconnectNetwork(t, node.Container, nw)
		// The node's only network carries its published ports, so the host loses it too.
		if nc, err := nats.Connect(url, nats.Timeout(2*time.Second)); err == nil {
			nc.Close()
			t.Fatal("connected to a node cut off its network")
		}
		connectNetwork(t, node.Container, nw, node.Name)
		waitConnect(t, node.HostURL(t))
	})

	t.Run("a killed node keeps its JetStream data after a restart", func(t *testing.T) {
		killContainer(t, node.Container)
		startStopped(t, node.Container)
		stream, err := jetStream(t, node.HostURL(t)).Stream(ctx, "CHAOS")
		if err != nil {
			t.Fatalf("stream after restart: %v", err)
		}
		msg, err := stream.GetLastMsgForSubject(ctx, "chaos.before")
		if err != nil {
			t.Fatalf("read back after restart: %v", err)
		}
		if got := string(msg.Data); got != "kept" {
			t.Errorf("message body = %q, want kept", got)
		}
	})

	t.Run("a stopped node serves again when started", func(t *testing.T) {
		stopContainer(t, node.Container)
		startStopped(t, node.Container)
		js := jetStream(t, node.HostURL(t))
		if _, err := js.Publish(ctx, "chaos.after", []byte("new")); err != nil {
			t.Fatalf("publish after restart: %v", err)
		}
	})
}

// waitConnect connects to url, retrying until it succeeds or testTimeout passes: after a
// network reconnect the published port may take a moment to be routed again.
func waitConnect(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var lastErr error
	for {
		nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
			return
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("connect to %s: %v", url, errors.Join(ctx.Err(), lastErr))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
