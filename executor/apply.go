package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Execute sends job to Apinizer and retries retryable failures within the
// RetryPolicy. It returns a nil error only for StatusSucceeded,
// StatusPartial or, for a certificate.apply that found its certificate
// served already, StatusUnchanged; every error matches exactly one of
// ErrPermanent and ErrRetryable, and Response.Attempts (the write's HTTP
// attempts; reads are not counted) is set either way. An error matching
// ErrUnauthorized (Apinizer rejected the token, after one fresh token with
// client credentials) is the credentials' fault, never the job's.
//
// Certificate jobs read before and after they write:
//   - certificate.apply reads the certificate and writes nothing when every
//     listed environment serves the job's certificate; otherwise it checks
//     environmentList against the project's environments (unknown_environment)
//     and creates or updates the certificate.
//   - An expectedThumbprint on certificate.update, certificate.delete or
//     certificate.apply is checked against the certificate read first: any
//     environment of the job (for delete: any environment) serving another
//     thumbprint fails the job with precondition_failed, and nothing is
//     written.
//   - After a certificate write that succeeded, the certificate is read back
//     into Response.Live (for create and update, with Config.ReadBackWrites);
//     an environment that does not serve the uploaded certificate is a
//     failed environment, and the job partial.
//
// A refusal that may echo an earlier attempt whose answer was lost ends as
// what really happened (see settle): a delete already gone, a public key
// already unassigned, a certificate already created with the job's content.
//
// A retryable error is returned when the policy is exhausted, when Apinizer
// asks (Retry-After) for a longer wait than the policy has left, so that the
// caller can redeliver after APIError.RetryAfter, and when ctx ends: that
// error also matches ctx.Err(), as the job was not finished.
func (c *Client) Execute(ctx context.Context, job jobs.Job, call Call) (Response, error) {
	switch j := job.(type) {
	case *jobs.CertificateApply:
		return c.apply(ctx, j, call)
	case *jobs.CertificateCreate:
		return c.write(ctx, j, j.ProjectName, j.CertificateName, j.CertificateFields, call, c.readBackWrites)
	case *jobs.CertificateUpdate:
		if j.ExpectedThumbprint != "" {
			done, err := c.updatePrecondition(ctx, j, call)
			if err != nil || done.Status != "" {
				return done, err
			}
		}
		return c.write(ctx, j, j.ProjectName, j.CertificateName, j.CertificateFields, call, c.readBackWrites)
	case *jobs.CertificateDelete:
		if j.ExpectedThumbprint != "" {
			live, _, err := c.liveCertificate(ctx, j.ProjectName, j.CertificateName)
			if err != nil {
				return Response{}, err
			}
			if err := precondition(j.ExpectedThumbprint, live, nil); err != nil {
				return Response{}, err
			}
		}
	}
	return c.send(ctx, job, call)
}

// apply carries out a certificate.apply: a read, then at most one write.
func (c *Client) apply(ctx context.Context, j *jobs.CertificateApply, call Call) (Response, error) {
	want, err := jobs.Thumbprint(j.PEMEncodedFile)
	if err != nil {
		return Response{}, fmt.Errorf("executor: %w: %w", err, ErrPermanent)
	}
	live, exists, err := c.liveCertificate(ctx, j.ProjectName, j.CertificateName)
	if err != nil {
		return Response{}, err
	}
	// Served already: nothing to write, whatever expectedThumbprint says,
	// since nothing would change. This is also how a redelivered apply
	// whose write landed (its answer lost) ends, with one write in all.
	if exists && serves(live, j.EnvironmentList, want) {
		return Response{Status: jobs.StatusUnchanged, Live: liveIn(live, j.EnvironmentList)}, nil
	}
	if j.ExpectedThumbprint != "" {
		if err := precondition(j.ExpectedThumbprint, live, j.EnvironmentList); err != nil {
			return Response{}, err
		}
	}
	unknown, err := c.unknownEnvironments(ctx, j.ProjectName, j.EnvironmentList)
	if err != nil {
		return Response{}, err
	}
	if len(unknown) > 0 {
		return Response{}, &APIError{Code: CodeUnknownEnvironment, Message: fmt.Sprintf(
			"project %q has no environment %s; nothing was written", j.ProjectName, quoteAll(unknown))}
	}
	var write jobs.Job = j.Update()
	if !exists {
		write = j.Create()
	}
	return c.write(ctx, write, j.ProjectName, j.CertificateName, j.CertificateFields, call, true)
}

// write sends a certificate create or update and, if read, reads the
// certificate back (readBack).
func (c *Client) write(ctx context.Context, job jobs.Job, project, name string, f jobs.CertificateFields, call Call, read bool) (Response, error) {
	resp, err := c.send(ctx, job, call)
	if !read {
		return resp, err
	}
	return c.readBack(ctx, project, name, f, resp, err)
}

// updatePrecondition checks a certificate.update's expectedThumbprint. A
// mismatch fails the job, except on a redelivery that finds the job's own
// certificate served everywhere: its earlier write landed and only the
// answer was lost, so the job is done (Status set) without a second write.
func (c *Client) updatePrecondition(ctx context.Context, j *jobs.CertificateUpdate, call Call) (Response, error) {
	live, exists, err := c.liveCertificate(ctx, j.ProjectName, j.CertificateName)
	if err != nil {
		return Response{}, err
	}
	perr := precondition(j.ExpectedThumbprint, live, j.EnvironmentList)
	if perr == nil {
		return Response{}, nil
	}
	if want, err := jobs.Thumbprint(j.PEMEncodedFile); err == nil && call.PriorAttempts > 0 && exists && serves(live, j.EnvironmentList, want) {
		return Response{Status: jobs.StatusSucceeded, AlreadyApplied: true, Live: liveIn(live, j.EnvironmentList)}, nil
	}
	return Response{}, perr
}

// liveCertificate reads a certificate; a certificate that does not exist
// is not an error but exists false.
func (c *Client) liveCertificate(ctx context.Context, project, name string) (live []CertificateEnvironment, exists bool, err error) {
	live, err = c.Certificate(ctx, project, name)
	var apiErr *APIError
	if errors.As(err, &apiErr) && !errors.Is(err, ErrRetryable) && apiErr.StableCode() == CodeNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return live, true, nil
}

// serves reports whether every one of envs serves the thumbprint want.
func serves(live []CertificateEnvironment, envs []string, want string) bool {
	for _, l := range liveIn(live, envs) {
		if l.SHA1Thumbprint != want {
			return false
		}
	}
	return true
}

// precondition returns a precondition_failed error if an environment of
// live (one of envs, unless envs is nil) serves a certificate whose
// thumbprint is not expected. An environment serving nothing of the name
// serves no other certificate.
func precondition(expected string, live []CertificateEnvironment, envs []string) error {
	want := jobs.NormalizeThumbprint(expected)
	for _, l := range live {
		if (envs != nil && !slices.Contains(envs, l.EnvironmentName)) || l.SHA1Thumbprint == want {
			continue
		}
		got := l.SHA1Thumbprint
		if got == "" {
			got = "a certificate whose thumbprint Apinizer did not report"
		}
		return &APIError{Code: CodePreconditionFailed, Message: fmt.Sprintf(
			"environment %q serves %s, the job expects %s; nothing was written", l.EnvironmentName, got, want)}
	}
	return nil
}

// readBack reads a certificate after a write that succeeded, into
// resp.Live, and fails each environment of the job that does not serve the
// uploaded certificate. A read-back that fails leaves the write's answer
// as it was, without Live: the write happened either way.
func (c *Client) readBack(ctx context.Context, project, name string, f jobs.CertificateFields, resp Response, err error) (Response, error) {
	if err != nil {
		return resp, err
	}
	want, terr := jobs.Thumbprint(f.PEMEncodedFile)
	live, rerr := c.Certificate(ctx, project, name)
	if terr != nil || rerr != nil {
		return resp, nil
	}
	resp.Live = liveIn(live, f.EnvironmentList)
	for _, l := range resp.Live {
		if l.SHA1Thumbprint == want {
			continue
		}
		msg := "read back: serves no certificate " + name
		if l.SHA1Thumbprint != "" {
			msg = "read back: serves " + l.SHA1Thumbprint + ", not the uploaded " + want
		}
		failEnvironment(&resp, f.EnvironmentList, l.EnvironmentName, msg)
	}
	return resp, nil
}

// failEnvironment marks env failed in resp's deployment report, with msg,
// and the job partial: the write was made, but env does not serve it.
func failEnvironment(resp *Response, envs []string, env, msg string) {
	if resp.Deployment == nil {
		// An answer with no report (a lost answer settled by a read):
		// every environment of the job gets an entry, so that the failed
		// one stands out among the others.
		resp.Deployment = &jobs.DeploymentResult{Success: true, EnvironmentResults: []jobs.EnvironmentResult{}}
		for _, e := range envs {
			resp.Deployment.EnvironmentResults = append(resp.Deployment.EnvironmentResults, jobs.EnvironmentResult{EnvironmentName: e, Success: true})
		}
	}
	d := resp.Deployment
	i := slices.IndexFunc(d.EnvironmentResults, func(r jobs.EnvironmentResult) bool { return r.EnvironmentName == env })
	if i < 0 {
		d.EnvironmentResults = append(d.EnvironmentResults, jobs.EnvironmentResult{EnvironmentName: env})
		i = len(d.EnvironmentResults) - 1
	}
	r := &d.EnvironmentResults[i]
	if !r.Success && r.Message != "" {
		msg = r.Message + "; " + msg
	}
	r.Success, r.Message = false, msg
	d.Success = false
	resp.Status = jobs.StatusPartial
}

// quoteAll renders names for a message: "a", "b".
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
