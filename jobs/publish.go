package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Marshal validates job and returns its JSON body. An invalid job returns the
// validation error, so that a producer cannot put a job on the wire that every
// worker would refuse.
func Marshal(job Job) ([]byte, error) {
	if job == nil {
		return nil, errNilJob
	}
	if err := job.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("jobs: marshal %s job %s: %w", job.Subject(), quote(job.ID()), err)
	}
	return body, nil
}

// NewMsg returns the message for job: its subject, its JSON body and the
// Nats-Msg-Id header set to the job id, so that JetStream deduplicates a
// republished job. Batch producers hand it to PublishMsgAsync.
func NewMsg(job Job) (*nats.Msg, error) {
	body, err := Marshal(job)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(job.Subject())
	msg.Data = body
	msg.Header.Set(nats.MsgIdHdr, job.ID())
	return msg, nil
}

// Publish validates job and publishes it to JetStream, waiting for the
// stream's acknowledgement. The returned PubAck's Duplicate field reports a
// job id already seen within the stream's duplicate window. opts may add
// expectations such as jetstream.WithExpectStream; the message id is always
// the job id, whatever opts say, since the worker refuses a job whose
// Nats-Msg-Id differs from its jobId.
func Publish(ctx context.Context, js jetstream.JetStream, job Job, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	msg, err := NewMsg(job)
	if err != nil {
		return nil, err
	}
	opts = append(slices.Clip(opts), jetstream.WithMsgID(job.ID()))
	ack, err := js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return nil, fmt.Errorf("jobs: publish %s job %s: %w", job.Subject(), quote(job.ID()), err)
	}
	return ack, nil
}
