package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
)

const streamName = "APIOPS_JOBS"

// jetStreamBundle is a real in-process JetStream server with the jobs stream,
// and a client connected to it.
type jetStreamBundle struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// setupJetStream starts a JetStream server on a free port with a stream on
// "apiops.>", and shuts it all down when the test ends.
func setupJetStream(tb testing.TB) *jetStreamBundle {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		tb.Fatalf("creating NATS server: %v", err)
	}
	srv.Start()
	tb.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		tb.Fatal("NATS server not ready within 10s")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		tb.Fatalf("connecting to NATS: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       streamName,
		Subjects:   []string{"apiops.>"},
		Duplicates: time.Minute,
	})
	if err != nil {
		tb.Fatalf("creating stream: %v", err)
	}
	return &jetStreamBundle{js: js, stream: stream}
}

// storedMsgs returns how many messages the stream holds.
func (b *jetStreamBundle) storedMsgs(ctx context.Context, tb testing.TB) uint64 {
	tb.Helper()
	info, err := b.stream.Info(ctx)
	if err != nil {
		tb.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func TestPublish(t *testing.T) {
	t.Parallel()
	b := setupJetStream(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	for _, subject := range jobs.Subjects {
		t.Run("a "+subject+" job is stored once under its id", func(t *testing.T) {
			job := exampleJob(t, subject)
			wantBody, err := jobs.Marshal(job)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}

			ack, err := jobs.Publish(ctx, b.js, job)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if ack.Duplicate {
				t.Errorf("first Publish acked as duplicate: %+v", ack)
			}
			msg, err := b.stream.GetMsg(ctx, ack.Sequence)
			if err != nil {
				t.Fatalf("GetMsg(%d): %v", ack.Sequence, err)
			}
			type stored struct {
				Subject, MsgID string
				Body           []byte
			}
			want := stored{Subject: subject, MsgID: job.ID(), Body: wantBody}
			got := stored{Subject: msg.Subject, MsgID: msg.Header.Get(nats.MsgIdHdr), Body: msg.Data}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("stored message (-want +got):\n%s", diff)
			}
			decoded, err := jobs.Decode(msg.Subject, msg.Header, msg.Data)
			if err != nil {
				t.Fatalf("Decode of the stored message: %v", err)
			}
			if diff := cmp.Diff(job, decoded); diff != "" {
				t.Errorf("decoded stored job (-want +got):\n%s", diff)
			}

			again, err := jobs.Publish(ctx, b.js, job)
			if err != nil {
				t.Fatalf("second Publish: %v", err)
			}
			if diff := cmp.Diff(jetstream.PubAck{Stream: streamName, Sequence: ack.Sequence, Duplicate: true}, *again); diff != "" {
				t.Errorf("second Publish ack (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("the message id is the job id whatever the options say", func(t *testing.T) {
		job := &jobs.KeyDelete{JobID: "delete-other-key", ProjectName: "MyProject", KeyName: "other-key"}
		ack, err := jobs.Publish(ctx, b.js, job, jetstream.WithMsgID("something-else"), jetstream.WithExpectStream(streamName))
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		msg, err := b.stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatalf("GetMsg(%d): %v", ack.Sequence, err)
		}
		if got := msg.Header.Get(nats.MsgIdHdr); got != job.ID() {
			t.Errorf("stored Nats-Msg-Id = %q, want %q", got, job.ID())
		}
	})

	t.Run("a failed publish wraps the JetStream error", func(t *testing.T) {
		job := exampleJob(t, jobs.SubjectKeyDelete)
		_, err := jobs.Publish(ctx, b.js, job, jetstream.WithExpectStream("NO_SUCH_STREAM"))
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			t.Errorf("Publish error = %v, want a *jetstream.APIError", err)
		}
	})
}

func TestPublishRefusesInvalidJobs(t *testing.T) {
	t.Parallel()
	b := setupJetStream(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	tests := []struct {
		name  string
		job   jobs.Job
		want  error
		field string
	}{
		{"a nil job is refused", nil, jobs.ErrRequired, ""},
		{"a typed nil job is refused", (*jobs.CertificateUpdate)(nil), jobs.ErrRequired, ""},
		{
			"a job with a traversing name is refused",
			&jobs.CertificateDelete{JobID: "j-1", ProjectName: "MyProject", CertificateName: "../admin"},
			jobs.ErrInvalidValue, "certificateName",
		},
		{
			"a certificate job carrying a private key is refused",
			func() jobs.Job {
				j := exampleJob(t, jobs.SubjectCertificateUpdate).(*jobs.CertificateUpdate)
				j.PEMEncodedFile += testPEM(t).pkcs8Key
				return j
			}(),
			jobs.ErrInvalidValue, "pemEncodedFile",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ack, err := jobs.Publish(ctx, b.js, tc.job)
			if ack != nil {
				t.Errorf("Publish returned ack %+v for an invalid job", ack)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Publish error = %v, want one matching %v", err, tc.want)
			}
			var field string
			if fe := (*jobs.FieldError)(nil); errors.As(err, &fe) {
				field = fe.Field
			}
			if field != tc.field {
				t.Errorf("Publish error %v names field %q, want %q", err, field, tc.field)
			}
			if _, err := jobs.NewMsg(tc.job); !errors.Is(err, tc.want) {
				t.Errorf("NewMsg error = %v, want one matching %v", err, tc.want)
			}
		})
	}
	if n := b.storedMsgs(ctx, t); n != 0 {
		t.Errorf("stream holds %d messages after invalid publishes, want 0", n)
	}
}

func TestNewMsg(t *testing.T) {
	t.Parallel()
	for _, subject := range jobs.Subjects {
		t.Run("a "+subject+" message carries subject, body and Nats-Msg-Id", func(t *testing.T) {
			t.Parallel()
			job := exampleJob(t, subject)
			msg, err := jobs.NewMsg(job)
			if err != nil {
				t.Fatalf("NewMsg: %v", err)
			}
			body, err := jobs.Marshal(job)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			type message struct {
				Subject string
				Header  nats.Header
				Data    []byte
			}
			want := message{Subject: subject, Header: nats.Header{nats.MsgIdHdr: {job.ID()}}, Data: body}
			got := message{Subject: msg.Subject, Header: msg.Header, Data: msg.Data}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("NewMsg (-want +got):\n%s", diff)
			}
		})
	}
}
