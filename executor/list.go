package executor

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// ListedCertificate is one certificate of a project's list, with what
// Apinizer serves for it per environment.
type ListedCertificate struct {
	Name         string
	Environments []CertificateEnvironment
}

// Projects lists the names of the projects the token can read (GET
// /apiops/projects/, projects_list-projects.mdx), retrying like any
// idempotent read.
func (c *Client) Projects(ctx context.Context) ([]string, error) {
	u := *c.base
	u.Path, u.RawPath = u.Path+"/apiops/projects/", u.RawPath+"/apiops/projects/"
	body, err := c.read(ctx, &request{method: http.MethodGet, url: u.String()}, c.retry.NewBackOff())
	if err != nil {
		return nil, err
	}
	return parseProjects(body)
}

// Certificates lists a project's certificates (GET
// /apiops/projects/{projectName}/certificates/,
// keys-secrets_crud_list-certificates.mdx), retrying like any idempotent
// read. A missing project is an *APIError whose StableCode is
// project_not_found.
func (c *Client) Certificates(ctx context.Context, project string) ([]ListedCertificate, error) {
	u, err := apiopsURL(c.base, project, lit("certificates"))
	if err != nil {
		return nil, err
	}
	body, err := c.read(ctx, &request{method: http.MethodGet, url: u.String(), kind: jobs.KindCertificate}, c.retry.NewBackOff())
	if err != nil {
		return nil, err
	}
	return parseCertificates(body)
}

// parseProjects reads a project list: {"status"|"success", "resultList":
// [...]} as documented, or the list under "result"; each entry a project
// object ({"name"}, or {"projectName"}) or a bare name.
func parseProjects(body []byte) ([]string, error) {
	var b struct {
		ResultList []json.RawMessage `json:"resultList"`
		Result     []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "unparseable project list: " + excerpt(body)}
	}
	list := b.ResultList
	if list == nil {
		list = b.Result
	}
	if list == nil {
		return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "project list without resultList: " + excerpt(body)}
	}
	out := make([]string, 0, len(list))
	for _, raw := range list {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			var p struct {
				Name        string `json:"name"`
				ProjectName string `json:"projectName"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "unparseable project: " + excerpt(raw)}
			}
			name = cmp.Or(p.Name, p.ProjectName)
		}
		if name = sanitize(name, maxCodeBytes); name != "" {
			out = append(out, name)
		}
	}
	return out, nil
}

// parseCertificates reads a certificate list: {"status"|"success",
// "resultList": [certificate]} as documented, or the list under "result".
func parseCertificates(body []byte) ([]ListedCertificate, error) {
	var b struct {
		ResultList []apiCertificate `json:"resultList"`
		Result     []apiCertificate `json:"result"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "unparseable certificate list: " + excerpt(body)}
		}
	}
	list := b.ResultList
	if list == nil {
		list = b.Result
	}
	if list == nil {
		return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "certificate list without resultList: " + excerpt(body)}
	}
	out := make([]ListedCertificate, 0, len(list))
	for i := range list {
		name := sanitize(cmp.Or(list[i].Name, list[i].CertificateName), maxCodeBytes)
		if name == "" {
			continue
		}
		out = append(out, ListedCertificate{Name: name, Environments: list[i].environments()})
	}
	return out, nil
}

// environments converts the certificate's per-environment entries. The
// thumbprint, subject and dates Apinizer gives are taken as they are; what
// it leaves out is computed from base64EncodedContent when it sent that.
func (a *apiCertificate) environments() []CertificateEnvironment {
	out := make([]CertificateEnvironment, 0, len(a.CertificateEnvironmentList))
	for _, e := range a.CertificateEnvironmentList {
		thumb := jobs.NormalizeThumbprint(e.SHA1Thumbprint)
		if thumb == "" {
			thumb = contentThumbprint(e.Base64EncodedContent)
		}
		env := CertificateEnvironment{
			EnvironmentName: sanitize(e.EnvironmentName, maxCodeBytes), SHA1Thumbprint: thumb,
			SubjectDN: clip(e.SubjectDN), Alias: clip(e.Alias),
			StartDate: sanitize(string(e.StartDate), maxCodeBytes), EndDate: sanitize(string(e.EndDate), maxCodeBytes),
			NotBefore: parseDate(string(e.StartDate)), NotAfter: parseDate(string(e.EndDate)),
		}
		if env.NotBefore.IsZero() || env.NotAfter.IsZero() || env.SubjectDN == "" {
			if x := contentCertificate(e.Base64EncodedContent); x != nil {
				env.NotBefore = cmp.Or(env.NotBefore, x.NotBefore.UTC())
				env.NotAfter = cmp.Or(env.NotAfter, x.NotAfter.UTC())
				env.SubjectDN = cmp.Or(env.SubjectDN, x.Subject.String())
			}
		}
		out = append(out, env)
	}
	return out
}

// apiDate is a date as Apinizer sends it: ISO 8601 text as documented, or
// epoch milliseconds, as Java serialisers write a Date by default.
type apiDate string

func (d *apiDate) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(b, []byte(`"`)) {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = apiDate(s)
		return nil
	}
	if !bytes.Equal(b, []byte("null")) {
		*d = apiDate(b)
	}
	return nil
}

// dateLayouts are the ISO 8601 forms a Java server may write (Apinizer
// writes "2024-01-01T00:00:00.000Z"); a time without a zone is UTC.
var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02"}

// parseDate reads a certificate date, of a list (an apiDate) or of a read;
// the zero time when it is none of the forms.
func parseDate(s string) time.Time {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC()
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// contentCertificate parses base64EncodedContent (DER, or PEM text); nil
// when it is neither.
func contentCertificate(content string) *x509.Certificate {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(content))
	if err != nil || len(raw) == 0 {
		return nil
	}
	if der := jobs.FirstCertificate(string(raw)); der != nil {
		raw = der
	}
	x, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil
	}
	return x
}
