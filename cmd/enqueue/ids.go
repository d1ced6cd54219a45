package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/ledger"
)

// A job id given again is answered from the ledger, not applied again: the
// worker finds the id's record and returns its result, whatever the new
// job asks. So before publishing, enqueue looks every given id up in the
// ledger and refuses one that names another job. What the ledger cannot
// show is caught later: a job with the id still queued (the server drops
// the publish as a duplicate, and says so in its ack), a running one (its
// claim is in its resource's record, and a running job record holds no
// subject), or one queued longer than the duplicate window; with --wait
// each is compared when its result comes. The jobs
// stream itself is not searched: producers may not read it (its messages
// are other projects' jobs, deploy/compose/nats-auth.conf), and a work
// queue takes no second consumer, so a search is a read per message.

// errIDTaken is matched by every error about a job id that names another
// job.
var errIDTaken = errors.New("job id names another job")

// idTakenError: the job id given for a job already names another one.
type idTakenError struct {
	at    string // where the job is in a batch file, or empty
	asked jobs.Job
	was   jobs.Result
}

func (e *idTakenError) Error() string {
	at := ""
	if e.at != "" {
		at = e.at + ": "
	}
	return fmt.Sprintf("%sjob id %q already names another job: %s, which %s; this job is %s",
		at, e.asked.ID(), describeResult(e.was), ended(e.was), describeJob(e.asked))
}

func (e *idTakenError) Unwrap() error { return errIDTaken }

// idTakenHint ends the report of ids found taken before publishing.
const idTakenHint = "nothing published: give the job another id, or use --force-new-id to have one generated"

// prior is what the ledger holds of a job's id, when it names this job.
// The zero value is nothing: the job is published.
type prior struct {
	// running: a worker holds the id. The job is not published; its
	// result is compared with it when it comes (--wait).
	running bool
	// result: the job ended with this result. It is not published.
	result *jobs.Result
}

// published reports whether the job goes out.
func (p prior) published() bool { return !p.running && p.result == nil }

// checkIDs looks up the given ids of list in the ledger. If one names
// another job, it returns an error matching errIDTaken that names each.
func checkIDs(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, list []outgoing) ([]prior, error) {
	if !slices.ContainsFunc(list, func(o outgoing) bool { return o.givenID }) {
		return make([]prior, len(list)), nil
	}
	recs, found, err := lookUpIDs(ctx, nc, js, list)
	if err != nil {
		return nil, err
	}
	priors, taken := judge(list, recs, found)
	switch {
	case len(taken) == 1 && len(list) == 1:
		return nil, fmt.Errorf("%w\n%s", taken[0], idTakenHint)
	case len(taken) > 0:
		return nil, fmt.Errorf("publish: %d job id(s) already name other jobs:\n%w\n%s", len(taken), errors.Join(taken...), idTakenHint)
	}
	return priors, nil
}

// judge decides, from the ledger records of list's ids, what becomes of
// each job, and returns an *idTakenError for each id naming another job. A
// final record names its job by its result; a running one names none.
func judge(list []outgoing, recs []ledger.JobRecord, found []bool) (priors []prior, taken []error) {
	priors = make([]prior, len(list))
	for i, o := range list {
		if !found[i] {
			continue
		}
		rec := recs[i]
		switch {
		case rec.State != ledger.StateFinal || rec.Result == nil:
			priors[i].running = true
		case sameJob(o.job, *rec.Result):
			priors[i].result = rec.Result
		default:
			taken = append(taken, &idTakenError{at: o.at, asked: o.job, was: *rec.Result})
		}
	}
	return priors, taken
}

// sameJob reports whether result r is of job: the same subject, bare or
// scoped, project and resource name. The rest of a job (a certificate's
// PEM, a key's content) is not in a result, and changing it under the same
// id is the producer's mistake the ledger cannot show.
func sameJob(job jobs.Job, r jobs.Result) bool {
	bare, _, _ := jobs.ParseSubject(r.Subject)
	res := job.Resource()
	return bare == job.Subject() && r.ProjectName == res.Project && r.ResourceName == res.Name
}

// describeJob names a job as a person would look for it.
func describeJob(job jobs.Job) string {
	res := job.Resource()
	return fmt.Sprintf("%s %s/%s", job.Subject(), res.Project, res.Name)
}

// describeResult names the job a result is of.
func describeResult(r jobs.Result) string {
	if r.ProjectName == "" && r.ResourceName == "" {
		return fmt.Sprintf("an invalid %s job", r.Subject)
	}
	return fmt.Sprintf("%s %s/%s", r.Subject, r.ProjectName, r.ResourceName)
}

// ended says how a result's job ended and when.
func ended(r jobs.Result) string {
	if r.FinishedAt.IsZero() {
		return "ended " + string(r.Status)
	}
	return fmt.Sprintf("ended %s at %s", r.Status, r.FinishedAt.UTC().Format(time.RFC3339))
}
