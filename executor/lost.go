package executor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// settle decides what a refused write means when its answer may be the echo
// of an earlier attempt whose own answer was lost (mayHaveApplied). It
// returns ok with the job's true outcome, or !ok when the refusal stands.
//
//   - A delete answered "not found" after an attempt that may have reached
//     Apinizer: the resource is gone, as the job asked.
//   - A public-key removal answered "no public key assigned", on any
//     attempt: the credential holds no key, as the job asked. "Credential …
//     was not found" is a failure (not_found), never "already gone".
//   - A credential certificate removal answered "no certificate assigned",
//     on any attempt: as for the public key.
//   - A key.create answered "already exists" after an attempt that may have
//     reached Apinizer: the key is read back (holdsKey). Apinizer never
//     returns key content, so unless an answer carries it the refusal
//     stands (already_exists), its message saying why.
//   - A certificate.create answered "already exists" after an attempt that
//     may have reached Apinizer: the certificate is read back, and the job
//     succeeded if every one of its environments serves the job's
//     certificate (same SHA-1 thumbprint); otherwise the refusal stands
//     (already_exists).
//
// A read that fails returns its error in place of the refusal.
func (c *Client) settle(ctx context.Context, job jobs.Job, req *request, mayHaveApplied bool, apiErr *APIError) (Response, bool, error) {
	refused := apiErr.StatusCode == http.StatusBadRequest || apiErr.StatusCode == http.StatusNotFound
	if !refused {
		return Response{}, false, nil
	}
	switch j := job.(type) {
	case *jobs.CredentialPublicKeyDelete:
		if noPublicKey(strings.ToLower(apiErr.Message)) {
			return Response{Status: jobs.StatusSucceeded, AlreadyGone: true}, true, nil
		}
		return Response{}, false, nil
	case *jobs.CredentialCertificateDelete:
		if noCertificate(strings.ToLower(apiErr.Message)) {
			return Response{Status: jobs.StatusSucceeded, AlreadyGone: true}, true, nil
		}
		return Response{}, false, nil
	case *jobs.KeyCreate:
		if !mayHaveApplied || apiErr.StableCode() != CodeAlreadyExists || !resourceNamed(jobs.KindKey, apiErr.Message) {
			return Response{}, false, nil
		}
		same, why, err := c.holdsKey(ctx, j, req)
		if err != nil {
			return Response{}, false, err
		}
		if !same {
			apiErr.Message = clip(apiErr.Message + " (" + why + ")")
			return Response{}, false, nil
		}
		return Response{Status: jobs.StatusSucceeded, AlreadyApplied: true}, true, nil
	case *jobs.CertificateCreate:
		if !mayHaveApplied || apiErr.StableCode() != CodeAlreadyExists || !resourceNamed(jobs.KindCertificate, apiErr.Message) {
			return Response{}, false, nil
		}
		// Thumbprints alone decide: the alias is not what a create is
		// identified by.
		same, err := c.servesCertificate(ctx, j.ProjectName, j.CertificateName, j.EnvironmentList, j.PEMEncodedFile, "")
		if err != nil || !same {
			return Response{}, false, err
		}
		return Response{Status: jobs.StatusSucceeded, AlreadyApplied: true}, true, nil
	}
	if req.delete && mayHaveApplied && resourceGone(req.kind, apiErr.Message) {
		return Response{Status: jobs.StatusSucceeded, AlreadyGone: true}, true, nil
	}
	return Response{}, false, nil
}

// alreadyUpdated reports whether a certificate.update that may already have
// been applied by an attempt whose answer was lost needs no repeat: every
// environment of the job serves its certificate under its alias. Repeating
// the update would be harmless but is a second change (and a second
// redeployment), so the retry checks first.
func (c *Client) alreadyUpdated(ctx context.Context, j *jobs.CertificateUpdate) (bool, error) {
	return c.servesCertificate(ctx, j.ProjectName, j.CertificateName, j.EnvironmentList, j.PEMEncodedFile, j.Alias)
}

// resourceNamed reports whether a message is about a resource of kind
// ("Certificate (name: c) …"), not about an alias or a project.
func resourceNamed(kind jobs.Kind, message string) bool {
	rest, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(message)), string(kind))
	return ok && rest != "" && (rest[0] == ' ' || rest[0] == '(')
}

// servesCertificate reads the certificate back and reports whether every
// environment in envs serves the certificate pemText holds, and under alias
// unless alias is empty or Apinizer reports none.
func (c *Client) servesCertificate(ctx context.Context, project, name string, envs []string, pemText, alias string) (bool, error) {
	want, err := jobs.Thumbprint(pemText)
	if err != nil {
		return false, fmt.Errorf("executor: %w: %w", err, ErrPermanent)
	}
	live, err := c.Certificate(ctx, project, name)
	if err != nil {
		return false, err
	}
	serving := make(map[string]CertificateEnvironment, len(live))
	for _, e := range live {
		serving[e.EnvironmentName] = e
	}
	for _, env := range envs {
		e, ok := serving[env]
		if !ok || e.SHA1Thumbprint != want || (alias != "" && e.Alias != "" && e.Alias != alias) {
			return false, nil
		}
	}
	return true, nil
}

// CertificateEnvironment is what Apinizer serves for a certificate in one
// environment.
type CertificateEnvironment struct {
	EnvironmentName string
	// SHA1Thumbprint is upper-case hex without separators, computed from the
	// content when Apinizer gave none.
	SHA1Thumbprint string
	SubjectDN      string
	Alias          string
	// StartDate and EndDate are Apinizer's text, as it sent them.
	StartDate, EndDate string
	// NotBefore and NotAfter are StartDate and EndDate read as times (UTC),
	// or the certificate's own dates when Apinizer sent its content and no
	// date it could be read as; zero when neither is known.
	NotBefore, NotAfter time.Time
}

// Certificate reads a certificate (GET …/certificates/{name}/), retrying
// like any idempotent call, and returns it per environment. A missing
// certificate is an *APIError whose StableCode is not_found.
func (c *Client) Certificate(ctx context.Context, project, name string) ([]CertificateEnvironment, error) {
	u, err := apiopsURL(c.base, project, lit("certificates"), segment{"certificateName", name})
	if err != nil {
		return nil, err
	}
	body, err := c.read(ctx, &request{method: http.MethodGet, url: u.String(), kind: jobs.KindCertificate}, c.retry.NewBackOff())
	if err != nil {
		return nil, err
	}
	return parseCertificate(name, body)
}

// apiCertificate is a certificate in every documented answer of get and
// list certificates.
type apiCertificate struct {
	Name                       string `json:"name"`
	CertificateName            string `json:"certificateName"`
	CertificateEnvironmentList []struct {
		EnvironmentName      string  `json:"environmentName"`
		StartDate            apiDate `json:"startDate"`
		EndDate              apiDate `json:"endDate"`
		Base64EncodedContent string  `json:"base64EncodedContent"`
		SHA1Thumbprint       string  `json:"sha1Thumbprint"`
		SubjectDN            string  `json:"subjectDn"`
		Alias                string  `json:"alias"`
	} `json:"certificateEnvironmentList"`
}

// parseCertificate reads a get-certificate answer: {"success"|"status",
// "resultList": [certificate]} as documented, or a certificate at the top
// level or under "result", as some revisions answer a single get.
func parseCertificate(name string, body []byte) ([]CertificateEnvironment, error) {
	var b struct {
		apiCertificate
		ResultList []apiCertificate `json:"resultList"`
		Result     *apiCertificate  `json:"result"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "unparseable certificate: " + excerpt(body)}
		}
	}
	var cert *apiCertificate
	switch {
	case len(b.ResultList) > 0:
		cert = &b.ResultList[0]
		for i := range b.ResultList {
			if b.ResultList[i].Name == name {
				cert = &b.ResultList[i]
			}
		}
	case b.Result != nil:
		cert = b.Result
	case b.CertificateEnvironmentList != nil:
		cert = &b.apiCertificate
	default:
		return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "certificate answer without certificateEnvironmentList: " + excerpt(body)}
	}
	return cert.environments(), nil
}

// contentThumbprint is the thumbprint of base64EncodedContent, which holds
// the DER certificate, or its PEM text; "" if it is neither.
func contentThumbprint(content string) string {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(content))
	if err != nil || len(raw) == 0 {
		return ""
	}
	if t, err := jobs.Thumbprint(string(raw)); err == nil {
		return t
	}
	return jobs.DERThumbprint(raw)
}
