package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// advisory is the part of the server's max-deliveries and terminated
// advisories the worker reads.
type advisory struct {
	Type       string `json:"type"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
	Reason     string `json:"reason"`
}

const terminatedAdvisory = "io.nats.jetstream.advisory.v1.terminated"

// handleAdvisories finishes jobs the server gave up on without a worker
// seeing their end: a job whose every delivery crashed its worker reaches
// max deliveries with no result; in a work queue it would stay in the stream
// forever, never delivered again. Each such job is dead-lettered, given a
// failed result, and removed.
func (w *Worker) handleAdvisories(ctx context.Context) {
	cons, err := w.js.Consumer(ctx, streams.Advisories, streams.AdvisoryConsumer)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("no advisory consumer: jobs that run out of deliveries unseen will not be dead-lettered", "err", err)
		}
		return
	}
	for ctx.Err() == nil {
		// Cut short at shutdown: an advisory sent to the abandoned pull is
		// only late by the advisory consumer's ack wait, while waiting out
		// the pull would delay the shutdown past its grace.
		fetchCtx, cancel := context.WithTimeout(ctx, w.cfg.FetchWait)
		batch, err := cons.Fetch(16, jetstream.FetchContext(fetchCtx))
		if err != nil {
			cancel()
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		for msg := range batch.Messages() {
			// Bounded: a request lost on a dead connection gets no reply.
			jobCtx, cancel := context.WithTimeout(ctx, settleTimeout)
			err := w.strandedJob(jobCtx, msg.Data())
			cancel()
			if err != nil {
				w.log.Warn("could not handle advisory; retrying", "err", err)
				_ = msg.NakWithDelay(5 * time.Second)
				continue
			}
			_ = msg.Ack()
		}
		cancel()
	}
}

func (w *Worker) strandedJob(ctx context.Context, data []byte) error {
	var adv advisory
	if err := json.Unmarshal(data, &adv); err != nil {
		w.log.Warn("ignoring undecodable advisory", "err", err)
		return nil
	}
	stream, err := w.js.Stream(ctx, w.stream)
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // settled meanwhile: acknowledged, or terminated by a worker that dead-lettered it
	}
	if err != nil {
		return err
	}

	j := jobRef{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: adv.StreamSeq, deliveries: adv.Deliveries, started: raw.Time}
	_ = j.decode() // an invalid job may still name its id
	f := stranded(adv)
	now := w.cfg.Now()
	// Settle may answer with another result (the job's own, or with more
	// attempts): this one is encoded only once it is the one published.
	r := j.result(*f.outcome, now).Result
	log := w.log.With("subject", raw.Subject, "stream_seq", adv.StreamSeq, "delivery", adv.Deliveries, "job_id", r.JobID)

	deadLetter := true
	if r.JobID != "" && w.cfg.Ledger != nil {
		var res jobs.ResourceKey
		if j.job != nil {
			res = j.job.Resource()
		}
		rec, err := w.cfg.Ledger.Settle(ctx, r.JobID, res, r)
		if err != nil {
			return err
		}
		// A job that did finish, but whose acknowledgement was lost, keeps
		// its own result and is no dead letter.
		deadLetter = rec.Result.Status == jobs.StatusFailed
		r = *rec.Result
	}
	// A missing stream is re-created as for a delivery; the advisory is
	// handed back and tried again.
	if deadLetter {
		if err := w.deadLetter(ctx, log, j.deadLetter(f.dlqReason, r, now)); err != nil {
			w.reprovision(ctx, objDLQ, err)
			return err
		}
	}
	if err := w.publishResult(ctx, &j, jobs.Encode(r)); err != nil {
		w.reprovision(ctx, objResults, err)
		return err
	}
	if deadLetter {
		w.cfg.Metrics.JobFinished(r, now.Sub(raw.Time))
	}
	if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	args := []any{"status", r.Status, "dead_lettered", deadLetter}
	if r.Error != nil {
		args = append(args, "code", r.Error.Code, "message", r.Error.Message)
	}
	log.Warn("job the server gave up on is finished", args...)
	return nil
}

// stranded is the fate of a job the server gave up on without a worker
// seeing its end: failed and dead-lettered, as running out of deliveries,
// or as terminated.
func stranded(adv advisory) fate {
	reason, code := dlq.ReasonMaxDeliveries, codeRetriesExhausted
	msg := fmt.Sprintf("the server gave up after %d deliveries, none of which a worker finished", adv.Deliveries)
	if adv.Type == terminatedAdvisory {
		reason, code = dlq.ReasonTerminated, "terminated"
		msg = "the job was terminated without a result: " + adv.Reason
	}
	re := &jobs.ResultError{Code: code, Message: msg, Retryable: true}
	return fate{action: giveUp, reason: code, dlqReason: reason, outcome: failed(0, re)}
}
