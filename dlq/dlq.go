// Package dlq keeps jobs the worker gave up on in the APIOPS_DLQ stream, on
// apiops.dlq.<resource>.<action>, with what an operator needs to decide what
// to do: the original job and headers, why it failed, how often it was tried
// and when. Records can be listed, shown, replayed as new jobs and purged.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// MaxPayload caps the stored copy of a job's body. A valid job is at most
// jobs.MaxBodySize; what is cut is only ever poison.
const MaxPayload = 64 << 10

// Reasons a job is dead-lettered.
const (
	ReasonPermanent     = "permanent_failure"
	ReasonMaxDeliveries = "max_deliveries"
	ReasonInvalid       = "invalid_job"
	ReasonPanic         = "worker_panic"
	ReasonTerminated    = "terminated"
)

// ReplayOfHeader on a replayed job names the job id it replays.
const ReplayOfHeader = "Apiops-Replay-Of"

// ErrNotFound: no record matches.
var ErrNotFound = errors.New("dlq: no such record")

// Record is one dead letter.
type Record struct {
	JobID   string `json:"jobId,omitempty"`
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
	// Error is the last error; Code is Apinizer's or the worker's code.
	Error *jobs.ResultError `json:"error,omitempty"`
	// Attempts counts Apinizer HTTP attempts, Deliveries the deliveries of
	// the job message.
	Attempts   int       `json:"attempts"`
	Deliveries uint64    `json:"deliveries"`
	StreamSeq  uint64    `json:"streamSeq"`
	FirstSeen  time.Time `json:"firstSeen,omitzero"`
	DeadAt     time.Time `json:"deadAt"`
	// Headers of the job message, except credentials (none are expected on
	// a job, but a producer's mistake must not be kept).
	Headers map[string][]string `json:"headers,omitempty"`
	// Payload is the job's body if it is valid UTF-8 (JSON is), else empty;
	// PayloadSize is its size before capping.
	Payload     string `json:"payload"`
	PayloadSize int    `json:"payloadSize"`
	Truncated   bool   `json:"truncated,omitempty"`
	// Redacted is set when secret material (a private key) was cut out of
	// the payload, or the whole payload withheld (key material in clear,
	// secret_in_clear): the job was refused for carrying it, and a dead
	// letter must not keep it. Such a record cannot be replayed as it is;
	// the producer sends the job again, encrypted.
	Redacted bool `json:"redacted,omitempty"`
	// Seq is the record's own sequence in the DLQ stream, set when read.
	Seq uint64 `json:"-"`
}

// NewRecord captures a job message for the dead-letter queue.
func NewRecord(subject string, header nats.Header, body []byte, reason string) Record {
	r := Record{Subject: subject, Reason: reason, PayloadSize: len(body)}
	if _, clear := jobs.HoldsClearSecret(subject, body); clear {
		// Dead letters keep key material only encrypted: the job must
		// be sent again, encrypted, not replayed.
		r.Redacted = true
		body = nil
	}
	if len(body) > MaxPayload {
		body, r.Truncated = body[:MaxPayload], true
	}
	if utf8.Valid(body) {
		var cut bool
		r.Payload, cut = redact(string(body))
		r.Redacted = r.Redacted || cut
	}
	for k, v := range header {
		if sensitiveHeader(k) || slices.ContainsFunc(v, holdsPrivateKey) {
			continue
		}
		if r.Headers == nil {
			r.Headers = make(map[string][]string)
		}
		r.Headers[k] = v
	}
	return r
}

func sensitiveHeader(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "authorization") || strings.Contains(k, "token") || strings.Contains(k, "secret") || strings.Contains(k, "password")
}

// Subject is the DLQ subject of a job subject:
// apiops.certificate.update becomes apiops.dlq.certificate.update.
func Subject(jobSubject string) string {
	if _, _, ok := jobs.ParseSubject(jobSubject); ok {
		// A scoped job keeps its project token: apiops.dlq.key.delete.TeamA.
		return "apiops.dlq." + strings.TrimPrefix(jobSubject, "apiops.")
	}
	return "apiops.dlq.invalid"
}

// MsgID is the Nats-Msg-Id of the dead letter of the job message with
// stream sequence seq: the worker giving up and the advisory of the same
// delivery record it once.
func MsgID(streamSeq uint64) string { return "dlq:" + strconv.FormatUint(streamSeq, 10) }

// Publish stores r and waits for JetStream to acknowledge it.
func Publish(ctx context.Context, js jetstream.JetStream, r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("dlq: encode: %w", err)
	}
	msg := nats.NewMsg(Subject(r.Subject))
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, MsgID(r.StreamSeq))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("dlq: publish: %w", err)
	}
	return nil
}

// List returns the records, oldest first, whose subject matches filter (a
// NATS subject filter; empty for all), at most limit of them (0: no limit).
func List(ctx context.Context, js jetstream.JetStream, filter string, limit int) ([]Record, error) {
	s, err := js.Stream(ctx, streams.DeadLetters)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	var out []Record
	for limit == 0 || len(out) < limit {
		// A short fetch: past the last record the stream has nothing more.
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, fmt.Errorf("dlq: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			r, err := decode(msg)
			if err != nil {
				continue
			}
			out = append(out, r)
			if meta, _ := msg.Metadata(); meta != nil && meta.Sequence.Stream >= info.State.LastSeq {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("dlq: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

// Get returns the record with DLQ sequence number id, or else the newest one
// for job id.
func Get(ctx context.Context, js jetstream.JetStream, id string) (Record, error) {
	s, err := js.Stream(ctx, streams.DeadLetters)
	if err != nil {
		return Record{}, fmt.Errorf("dlq: %w", err)
	}
	if seq, err := strconv.ParseUint(id, 10, 64); err == nil {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return Record{}, fmt.Errorf("dlq: %w", err)
		}
		var r Record
		if err := json.Unmarshal(raw.Data, &r); err != nil {
			return Record{}, fmt.Errorf("dlq: record %d: %w", seq, err)
		}
		r.Seq = raw.Sequence
		return r, nil
	}
	all, err := List(ctx, js, "", 0)
	if err != nil {
		return Record{}, err
	}
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].JobID == id {
			return all[i], nil
		}
	}
	return Record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// Replay republishes the record's job as a new job: the same body under a
// new job id (the old one is final in the ledger and would only return its
// failed result), with a new Nats-Msg-Id, and the ReplayOfHeader naming the
// original. The record is then removed from the queue. It returns the new
// job id.
func Replay(ctx context.Context, js jetstream.JetStream, r Record) (string, error) {
	if r.Truncated || r.Redacted || r.Payload == "" {
		return "", fmt.Errorf("dlq: record %d holds no complete job to replay", r.Seq)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.Payload), &body); err != nil {
		return "", fmt.Errorf("dlq: record %d is not a JSON job: %w", r.Seq, err)
	}
	original := r.JobID
	if original == "" {
		original = "dlq-" + strconv.FormatUint(r.Seq, 10)
	}
	newID := fmt.Sprintf("%s-replay-%d", original, r.Seq)
	if len(newID) > jobs.MaxIDSize {
		newID = fmt.Sprintf("replay-%d-%d", r.Seq, time.Now().UnixNano())
	}
	body["jobId"] = newID
	data, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("dlq: %w", err)
	}
	hdr := nats.Header{}
	hdr.Set(nats.MsgIdHdr, newID)
	hdr.Set(ReplayOfHeader, original)
	if _, err := jobs.Decode(r.Subject, hdr, data); err != nil {
		return "", fmt.Errorf("dlq: record %d would still be refused: %w", r.Seq, err)
	}
	msg := nats.NewMsg(r.Subject)
	msg.Header, msg.Data = hdr, data
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return "", fmt.Errorf("dlq: replay: %w", err)
	}
	if err := Delete(ctx, js, r.Seq); err != nil {
		return newID, err
	}
	return newID, nil
}

// Delete removes one record.
func Delete(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	s, err := js.Stream(ctx, streams.DeadLetters)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("dlq: delete %d: %w", seq, err)
	}
	return nil
}

// Purge removes every record, or those whose subject matches filter.
func Purge(ctx context.Context, js jetstream.JetStream, filter string) error {
	s, err := js.Stream(ctx, streams.DeadLetters)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	var opts []jetstream.StreamPurgeOpt
	if filter != "" {
		opts = append(opts, jetstream.WithPurgeSubject(filter))
	}
	if err := s.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("dlq: purge: %w", err)
	}
	return nil
}

func decode(msg jetstream.Msg) (Record, error) {
	var r Record
	if err := json.Unmarshal(msg.Data(), &r); err != nil {
		return Record{}, err
	}
	if meta, err := msg.Metadata(); err == nil {
		r.Seq = meta.Sequence.Stream
	}
	return r, nil
}
