package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
)

// TestCrashTableRows runs each row of the README's crash table ("What
// happens when a worker dies") against the ledger: worker-a works the job
// up to the row's point and dies there (its ledger is never called again),
// and worker-b's claim for the redelivery must find what the row says.
func TestCrashTableRows(t *testing.T) {
	t.Parallel()
	const seq = 5 // the job's stream sequence
	for _, row := range []struct {
		died string
		// work is worker-a's part, up to its death.
		work func(t *testing.T, a *ledger.Ledger, id string, res jobs.ResourceKey)
		// newer is the stream sequence of a job on the same resource that
		// another worker applied after the death, 0 for none.
		newer uint64
		// prior and final are what the redelivery's claim finds.
		prior int
		final bool
	}{{
		died: "before claiming the job",
		work: func(*testing.T, *ledger.Ledger, string, jobs.ResourceKey) {},
	}, {
		died:  "after claiming, before the Apinizer call",
		work:  func(t *testing.T, a *ledger.Ledger, id string, res jobs.ResourceKey) { claim(t, a, id, res, 1) },
		prior: 1, // the claim counts the attempt it may have made
	}, {
		died: "during or after the Apinizer call, before recording the result",
		work: func(t *testing.T, a *ledger.Ledger, id string, res jobs.ResourceKey) {
			c := claim(t, a, id, res, 1)
			if err := a.Attempt(context.Background(), c, 2); err != nil { // a retry within the delivery
				t.Fatal(err)
			}
		},
		prior: 2,
	}, {
		died: "during or after the call, while a newer job on the resource was applied",
		work: func(t *testing.T, a *ledger.Ledger, id string, res jobs.ResourceKey) {
			claim(t, a, id, res, 1)
		},
		newer: 9,
		prior: 1, // written out to the job's record by the newer job's takeover
	}, {
		died: "after recording the result, before publishing it",
		work: func(t *testing.T, a *ledger.Ledger, id string, res jobs.ResourceKey) {
			if err := a.Finish(context.Background(), claim(t, a, id, res, 1), seq, succeeded(id)); err != nil {
				t.Fatal(err)
			}
		},
		final: true,
	}, {
		died: "after publishing the result, before the ack",
		work: func(t *testing.T, a *ledger.Ledger, id string, res jobs.ResourceKey) {
			if err := a.Finish(context.Background(), claim(t, a, id, res, 1), seq, succeeded(id)); err != nil {
				t.Fatal(err)
			}
		},
		final: true,
	}} {
		t.Run(row.died, func(t *testing.T) {
			t.Parallel()
			a, b, clk := setup(t)
			ctx := context.Background()
			id := "crash"
			res := jobs.ResourceKey{Project: "P", Kind: jobs.KindCertificate, Name: "crash"}
			row.work(t, a, id, res)
			clk.advance(2 * time.Minute) // the dead worker's lease lapses
			if row.newer != 0 {
				n := claim(t, b, "newer", res, 1)
				if err := b.Finish(ctx, n, row.newer, succeeded("newer")); err != nil {
					t.Fatal(err)
				}
			}

			c, err := b.Claim(ctx, id, res, ledger.Delivery{N: 2})
			switch {
			case err != nil:
				t.Fatalf("the redelivery's claim: %v", err)
			case row.final:
				if c.Final == nil || c.Final.Result.Status != jobs.StatusSucceeded {
					t.Fatalf("the redelivery found %+v, want the job final with its stored result: it must not be applied again", c)
				}
				return
			case c.Final != nil:
				t.Fatalf("the redelivery found the job final (%s), want it to run", c.Final.Result.Status)
			}
			if c.Prior != row.prior {
				t.Errorf("the redelivery counts %d earlier attempt(s), want %d", c.Prior, row.prior)
			}
			if want := row.newer; c.Record.LastSeq != want {
				t.Errorf("the resource's last applied job: seq %d, want %d", c.Record.LastSeq, want)
			}
			if row.newer > seq && c.Record.LastSeq <= seq {
				t.Errorf("a newer job was applied, yet the redelivery (seq %d) would not end superseded", seq)
			}
		})
	}
}
