package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/ledger"
	"github.com/apiops-worker/apiops-worker/streams"
)

// lookupBatch is how many records one batched read asks for. The server
// answers at most 1024 subjects a request, and 256 records of at most
// jobs.MaxResultSize each stay well below its per-client byte limit.
const lookupBatch = 256

// lookupBatchesInFlight bounds the batched reads in flight.
const lookupBatchesInFlight = 4

// lookupConcurrency bounds the reads in flight on a server without batched
// reads, one record each.
const lookupConcurrency = 64

// errNoBatchRead: the server does not know batched direct gets
// (nats-server before 2.11), or the bucket answers no direct get.
var errNoBatchRead = errors.New("the server has no batched direct get")

// lookUpIDs reads the ledger record of every job in list whose id was given.
// found[i] says whether list[i]'s id has one. With no ledger bucket (no
// worker ever ran) none has. A batch of 50,000 ids is read in 200 requests:
// one request per id would halve enqueue's publishing rate.
func lookUpIDs(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, list []outgoing) (recs []ledger.JobRecord, found []bool, err error) {
	recs, found = make([]ledger.JobRecord, len(list)), make([]bool, len(list))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(len(list))*time.Millisecond)
	defer cancel()
	kv, err := js.KeyValue(ctx, streams.LedgerBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return recs, found, nil
	}
	if err != nil {
		return nil, nil, lookupError(err)
	}
	index := make(map[string]int) // job id → its job in list
	for i, o := range list {
		if o.givenID {
			index[o.job.ID()] = i
		}
	}
	ids := slices.Sorted(maps.Keys(index))
	var (
		mu    sync.Mutex
		read  = make(map[string]ledger.JobRecord)
		first error
		wg    sync.WaitGroup
		slots = make(chan struct{}, lookupBatchesInFlight)
	)
	for chunk := range slices.Chunk(ids, lookupBatch) {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			got, err := readBatch(ctx, nc, chunk)
			mu.Lock()
			defer mu.Unlock()
			maps.Copy(read, got)
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	if errors.Is(first, errNoBatchRead) {
		read, first = readEach(ctx, kv, ids)
	}
	if first != nil {
		return nil, nil, lookupError(first)
	}
	for id, rec := range read {
		i := index[id]
		recs[i], found[i] = rec, true
	}
	return recs, found, nil
}

func lookupError(err error) error {
	return fmt.Errorf("look up job ids in the ledger: %w (--force-new-id publishes under new ids without looking)", err)
}

// readBatch reads the records of ids in one batched direct get of the
// ledger's stream: the last message of each key's subject, then an
// end-of-batch status. Deleted keys and keys never written have no record.
func readBatch(ctx context.Context, nc *nats.Conn, ids []string) (map[string]ledger.JobRecord, error) {
	want := make(map[string]string, len(ids)) // subject → job id
	for _, id := range ids {
		want["$KV."+streams.LedgerBucket+"."+ledger.JobKey(id)] = id
	}
	out := make(map[string]ledger.JobRecord)
	for first := true; ; first = false {
		more, err := readBatchOnce(ctx, nc, want, out, first)
		if err != nil || !more {
			return out, err
		}
	}
}

// readBatchOnce asks for the records of want's subjects, moving each it
// receives from want to out. more says the server stopped short (its byte
// limit) and the rest must be asked for again.
func readBatchOnce(ctx context.Context, nc *nats.Conn, want map[string]string, out map[string]ledger.JobRecord, first bool) (more bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return false, err
	}
	defer sub.Unsubscribe()
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{slices.Collect(maps.Keys(want))})
	if err != nil {
		return false, err
	}
	if err := nc.PublishRequest("$JS.API.DIRECT.GET.KV_"+streams.LedgerBucket, inbox, req); err != nil {
		return false, err
	}
	received := 0
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) && first {
			// A bucket without direct gets has no responder.
			return false, errNoBatchRead
		}
		if err != nil {
			return false, fmt.Errorf("batched read: %w", err)
		}
		switch status := msg.Header.Get("Status"); status {
		case "":
			subject := msg.Header.Get(jetstream.SubjectHeader)
			id, ok := want[subject]
			if !ok {
				continue
			}
			delete(want, subject)
			received++
			// nats.go's KV marks a deleted or purged key so.
			if op := msg.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
				continue
			}
			var rec ledger.JobRecord
			if err := json.Unmarshal(msg.Data, &rec); err != nil {
				return false, fmt.Errorf("decode the record of job %q: %w", id, err)
			}
			out[id] = rec
		case "204": // end of batch
			pending, _ := strconv.Atoi(msg.Header.Get("Nats-Num-Pending"))
			if pending > 0 && received == 0 {
				return false, errors.New("batched read: the server sent nothing and says more is pending")
			}
			return pending > 0 && len(want) > 0, nil
		case "404": // none of the subjects has a message
			return false, nil
		case "408":
			// A server that predates multi_last ignores it and finds the
			// request empty.
			if first {
				return false, errNoBatchRead
			}
			fallthrough
		default:
			return false, fmt.Errorf("batched read: status %s %s", status, msg.Header.Get("Description"))
		}
	}
}

// readEach reads the records of ids one request each, lookupConcurrency at
// a time.
func readEach(ctx context.Context, kv jetstream.KeyValue, ids []string) (map[string]ledger.JobRecord, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		out   = make(map[string]ledger.JobRecord)
		first error
		next  = make(chan string)
	)
	for range min(lookupConcurrency, len(ids)) {
		wg.Go(func() {
			for id := range next {
				rec, err := ledger.ReadJob(ctx, kv, id)
				mu.Lock()
				switch {
				case err == nil:
					out[id] = rec
				case !errors.Is(err, ledger.ErrNotFound) && first == nil:
					first = fmt.Errorf("job %q: %w", id, err)
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		next <- id
	}
	close(next)
	wg.Wait()
	return out, first
}
