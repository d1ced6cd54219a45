package executor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"unicode"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Multipart names and types Apinizer documents for certificate create and
// update.
const (
	pemFieldName   = "pemEncodedFile"
	pemFileName    = "certificate.pem"
	pemContentType = "application/x-pem-file"
)

// request is one job turned into HTTP, built once per Execute and sent by
// every attempt. The body is kept as bytes so that each attempt reads it
// afresh.
type request struct {
	method      string
	url         string
	body        []byte // nil for deletes
	contentType string // set with body
	// kind and delete say whether a "not found" answer can mean that an
	// earlier attempt already deleted the resource.
	kind   jobs.Kind
	delete bool
	// secrets is the clear key material in body, taken out of every
	// answer; body is wiped when the call ends.
	secrets []string
}

// buildRequest maps a job to the request Apinizer documents for it. Path
// parameters are checked before anything is built, so a name that would
// change the path never reaches the network.
func (c *Client) buildRequest(job jobs.Job) (*request, error) {
	base := c.base
	switch j := job.(type) {
	case *jobs.KeyCreate:
		return c.keyRequest(j, j.ProjectName, j.KeyName, j.KeyFields, nil)
	case *jobs.KeyUpdate:
		return c.keyRequest(j, j.ProjectName, j.KeyName, j.KeyFields, j)
	case *jobs.JWKParse:
		return c.jwkParseRequest(j)
	case *jobs.JWKDelete:
		u, err := apiopsURL(base, j.ProjectName, lit("jwks"), segment{"jwkName", j.JWKName})
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodDelete, url: u.String(), kind: jobs.KindJWK, delete: true}, nil
	case *jobs.CredentialPublicKeySet:
		u, err := apiopsURL(base, j.ProjectName, lit("credentials"), segment{"username", j.Username}, lit("publicKey"), segment{"keyName", j.KeyName})
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodPut, url: u.String(), kind: jobs.KindCredential}, nil
	case *jobs.CredentialCertificateSet:
		u, err := apiopsURL(base, j.ProjectName, lit("credentials"), segment{"username", j.Username}, lit("certificate"), segment{"certificateName", j.CertificateName})
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodPut, url: u.String(), kind: jobs.KindCredential}, nil
	case *jobs.CredentialCertificateDelete:
		u, err := apiopsURL(base, j.ProjectName, lit("credentials"), segment{"username", j.Username}, lit("certificate"))
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodDelete, url: u.String(), kind: jobs.KindCredential, delete: true}, nil
	case *jobs.CertificateUpdate:
		u, err := apiopsURL(base, j.ProjectName, lit("certificates"), segment{"certificateName", j.CertificateName})
		if err != nil {
			return nil, err
		}
		setQuery(u, "jwkUpdateAction", string(j.JWKUpdateAction), "updateScope", string(j.UpdateScope))
		body, ct, err := certificateForm("", j.CertificateFields)
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodPut, url: u.String(), body: body, contentType: ct, kind: jobs.KindCertificate}, nil
	case *jobs.CertificateCreate:
		if err := checkParam("certificateName", j.CertificateName); err != nil {
			return nil, err
		}
		u, err := apiopsURL(base, j.ProjectName, lit("certificates"))
		if err != nil {
			return nil, err
		}
		body, ct, err := certificateForm(j.CertificateName, j.CertificateFields)
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodPost, url: u.String(), body: body, contentType: ct, kind: jobs.KindCertificate}, nil
	case *jobs.CertificateDelete:
		u, err := apiopsURL(base, j.ProjectName, lit("certificates"), segment{"certificateName", j.CertificateName})
		if err != nil {
			return nil, err
		}
		setQuery(u, "jwkDeleteAction", string(j.JWKDeleteAction))
		return &request{method: http.MethodDelete, url: u.String(), kind: jobs.KindCertificate, delete: true}, nil
	case *jobs.KeyDelete:
		u, err := apiopsURL(base, j.ProjectName, lit("keys"), segment{"keyName", j.KeyName})
		if err != nil {
			return nil, err
		}
		setQuery(u, "jwkDeleteAction", string(j.JWKDeleteAction))
		return &request{method: http.MethodDelete, url: u.String(), kind: jobs.KindKey, delete: true}, nil
	case *jobs.CredentialDelete:
		u, err := apiopsURL(base, j.ProjectName, lit("credentials"), segment{"username", j.Username})
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodDelete, url: u.String(), kind: jobs.KindCredential, delete: true}, nil
	case *jobs.CredentialPublicKeyDelete:
		u, err := apiopsURL(base, j.ProjectName, lit("credentials"), segment{"username", j.Username}, lit("publicKey"))
		if err != nil {
			return nil, err
		}
		return &request{method: http.MethodDelete, url: u.String(), kind: jobs.KindCredential, delete: true}, nil
	case nil:
		return nil, fmt.Errorf("executor: nil job: %w", ErrPermanent)
	default:
		return nil, fmt.Errorf("executor: unsupported job type %T: %w", job, ErrPermanent)
	}
}

// segment is one element of an APIOps path: a path parameter named after
// Apinizer's parameter, or, when name is empty, a fixed part of the template.
type segment struct{ name, value string }

// lit is a fixed path segment.
func lit(s string) segment { return segment{value: s} }

// apiopsURL appends "/apiops/projects/{projectName}/" and then each segment
// to the base URL. The path always ends in "/", as every APIOps endpoint
// does. Both Path and RawPath are set, so the escaping reaches the wire
// unchanged.
func apiopsURL(base *url.URL, project string, segs ...segment) (*url.URL, error) {
	segs = append([]segment{lit("apiops"), lit("projects"), {"projectName", project}}, segs...)
	path, raw := base.Path, base.RawPath
	for _, s := range segs {
		if s.name == "" {
			path += "/" + s.value
			raw += "/" + s.value
			continue
		}
		if err := checkParam(s.name, s.value); err != nil {
			return nil, err
		}
		path += "/" + s.value
		raw += "/" + escapeSegment(s.value)
	}
	u := *base
	u.Path, u.RawPath = path+"/", raw+"/"
	return &u, nil
}

// escapeSegment escapes a path parameter, and "+" too: url.PathEscape
// leaves it, as RFC 3986 allows in a path, but servers and proxies that
// decode paths like form values would read it as a space.
func escapeSegment(v string) string {
	return strings.ReplaceAll(url.PathEscape(v), "+", "%2B")
}

// checkParam refuses a path parameter that is empty or could change which
// path the request reaches, even after a proxy decodes or normalises it:
// separators, dot segments, percent signs and control characters. Escaping
// alone would be enough for a faithful server; refusing also protects against
// the ones in between that are not.
func checkParam(name, value string) error {
	bad := ""
	switch {
	case value == "":
		bad = "is empty"
	case value == "." || strings.Contains(value, ".."):
		bad = "contains a dot segment"
	case strings.ContainsAny(value, `/\%`):
		bad = `contains "/", "\" or "%"`
	case strings.ContainsFunc(value, unicode.IsControl):
		bad = "contains a control character"
	}
	if bad != "" {
		return &RequestError{Err: fmt.Errorf("path parameter %s %q %s", name, value, bad)}
	}
	return nil
}

// setQuery sets each key/value pair whose value is not empty. Unset
// parameters are left out so that Apinizer applies its own defaults.
func setQuery(u *url.URL, kv ...string) {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	u.RawQuery = q.Encode()
}

// certificateForm encodes the multipart body of certificate create (with
// name) and update (name empty): the text fields, then the PEM as the file
// part pemEncodedFile.
func certificateForm(name string, f jobs.CertificateFields) (body []byte, contentType string, err error) {
	var buf bytes.Buffer
	buf.Grow(len(f.PEMEncodedFile) + 1024)
	w := multipart.NewWriter(&buf)
	fields := [][2]string{
		{"alias", f.Alias},
		{"certificateDescription", f.CertificateDescription},
		{"environmentList", strings.Join(f.EnvironmentList, ",")},
	}
	if name != "" {
		fields = append([][2]string{{"certificateName", name}}, fields...)
	}
	for _, kv := range fields {
		if err := w.WriteField(kv[0], kv[1]); err != nil {
			return nil, "", fmt.Errorf("executor: encoding form: %w", err)
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="`+pemFieldName+`"; filename="`+pemFileName+`"`)
	h.Set("Content-Type", pemContentType)
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, "", fmt.Errorf("executor: encoding form: %w", err)
	}
	if _, err := io.WriteString(part, f.PEMEncodedFile); err != nil {
		return nil, "", fmt.Errorf("executor: encoding form: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, "", fmt.Errorf("executor: encoding form: %w", err)
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// newHTTPRequest makes the request of one attempt, with a fresh body reader
// (http.NewRequestWithContext sets ContentLength and GetBody for it) and the
// headers: the caller's first (checked by extraHeader), then the ones the
// call depends on, so that extra headers cannot replace the token or the
// content type.
func (r *request) newHTTPRequest(ctx context.Context, token string, extra http.Header) (*http.Request, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return nil, &RequestError{Err: err}
	}
	for k, vs := range extra {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", r.contentType)
	}
	return req, nil
}
