package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// RedriveOfHeader on a redriven job names the stream sequence of the
// stranded message it replaces.
const RedriveOfHeader = "Apiops-Redrive-Of"

// Stranded is a job the jobs consumer will never deliver again (it ran out
// of deliveries, or was terminated) and that is still in the jobs stream
// with no final ledger record: the worker that should have finished it from
// the server's advisory never saw it (the advisory was lost, for one, when
// JetStream's storage was full).
type Stranded struct {
	StreamSeq uint64
	Subject   string
	JobID     string // empty when the message names no usable id
	Published time.Time
	// Deliveries is the highest delivery that claimed the job in the
	// ledger, 0 when none did.
	Deliveries uint64
	valid      bool // a valid job, not an invalid one naming its id
	header     nats.Header
	data       []byte
}

// FindStranded lists the stranded jobs, oldest first, and how many jobs the
// consumer has delivered and not yet seen acknowledged (AckPending).
//
// A message is a candidate when the consumer has delivered it (its sequence
// is at most the consumer's last delivered one) and it is still in the
// jobs stream (a work queue removes a job once acknowledged), its ledger
// record is not final (else only its acknowledgement was lost) and no
// worker holds a live claim on it. The server does not say which messages
// it gave up on, so while AckPending is not 0 a candidate may instead be
// waiting for a redelivery; redriving such a job is still safe, as the
// ledger keeps its job id applied once. kv is the ledger bucket.
func FindStranded(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) (found []Stranded, ackPending int, err error) {
	cons, err := js.Consumer(ctx, streams.Jobs, streams.Consumer)
	if err != nil {
		return nil, 0, fmt.Errorf("dlq: stranded: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("dlq: stranded: %w", err)
	}
	last := info.Delivered.Stream
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		return nil, 0, fmt.Errorf("dlq: stranded: %w", err)
	}
	sinfo, err := s.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("dlq: stranded: %w", err)
	}
	for seq := sinfo.State.FirstSeq; seq <= last && sinfo.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("dlq: stranded: message %d: %w", seq, err)
		}
		st := Stranded{StreamSeq: seq, Subject: raw.Subject, Published: raw.Time, header: raw.Header, data: raw.Data}
		// A valid job's claim, if it has one, is in its resource's record.
		read := ledger.ReadJob
		if job, err := jobs.Decode(raw.Subject, raw.Header, raw.Data); err == nil {
			st.JobID, st.valid = job.ID(), true
			read = func(ctx context.Context, kv jetstream.KeyValue, id string) (ledger.JobRecord, error) {
				return ledger.ReadClaim(ctx, kv, id, job.Resource())
			}
		} else if de := (*jobs.DecodeError)(nil); errors.As(err, &de) {
			st.JobID = de.JobID
		}
		if st.JobID != "" {
			rec, err := read(ctx, kv, st.JobID)
			if err == nil && (rec.State == ledger.StateFinal || rec.LeaseUntil.After(time.Now())) {
				continue
			}
			if err == nil {
				st.Deliveries = rec.Deliveries
			}
			if err != nil && !errors.Is(err, ledger.ErrNotFound) {
				return nil, 0, fmt.Errorf("dlq: stranded: job %q: %w", st.JobID, err)
			}
		}
		found = append(found, st)
	}
	return found, info.NumAckPending, nil
}

// Redrive publishes the stranded job again as a new message, keeping its
// job id so that the ledger stays exact (a job that did reach Apinizer is
// not applied twice), then removes the stranded message. The id goes into
// the body's jobId, and the message carries no Nats-Msg-Id: the original id
// may still be in the stream's duplicate window. An invalid job is
// republished as it is, to fail again, with a result this time.
func Redrive(ctx context.Context, js jetstream.JetStream, st Stranded) error {
	data := st.data
	if st.valid {
		var body map[string]json.RawMessage
		if err := json.Unmarshal(st.data, &body); err != nil {
			return fmt.Errorf("dlq: redrive %d: %w", st.StreamSeq, err)
		}
		id, _ := json.Marshal(st.JobID)
		body["jobId"] = id
		var err error
		if data, err = json.Marshal(body); err != nil {
			return fmt.Errorf("dlq: redrive %d: %w", st.StreamSeq, err)
		}
	}
	msg := nats.NewMsg(st.Subject)
	msg.Data = data
	for k, v := range st.header {
		if k != nats.MsgIdHdr {
			msg.Header[k] = v
		}
	}
	msg.Header.Set(RedriveOfHeader, strconv.FormatUint(st.StreamSeq, 10))
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return fmt.Errorf("dlq: redrive %d: %w", st.StreamSeq, err)
	}
	if ack.Duplicate {
		return fmt.Errorf("dlq: redrive %d: the stream dropped the job as a duplicate of its Nats-Msg-Id; retry after the duplicate window", st.StreamSeq)
	}
	// Published first: a crash here leaves two messages of one job id, and
	// the ledger applies it once.
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		return fmt.Errorf("dlq: redrive %d: %w", st.StreamSeq, err)
	}
	if err := s.DeleteMsg(ctx, st.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("dlq: redrive %d: remove the stranded message: %w", st.StreamSeq, err)
	}
	return nil
}
