package apinizertest

import (
	"crypto/sha1" //nolint:gosec // Apinizer identifies certificates by SHA-1 thumbprint.
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Bodies of the read-only calls, in the field order of Apinizer's pages.
type (
	certificateList struct {
		Success    bool          `json:"success"`
		ResultList []certificate `json:"resultList"`
	}
	statusCertificateList struct {
		Status     string        `json:"status"`
		ResultList []certificate `json:"resultList"`
	}
	certificate struct {
		Name                       string                   `json:"name"`
		Description                string                   `json:"description"`
		CertificateEnvironmentList []certificateEnvironment `json:"certificateEnvironmentList"`
	}
	certificateEnvironment struct {
		EnvironmentName      string `json:"environmentName"`
		StartDate            string `json:"startDate"`
		EndDate              string `json:"endDate"`
		Base64EncodedContent string `json:"base64EncodedContent,omitempty"`
		SHA1Thumbprint       string `json:"sha1Thumbprint"`
		SubjectDN            string `json:"subjectDn"`
		Alias                string `json:"alias"`
	}
	projectList struct {
		Status      string        `json:"status"`
		ResultList  []projectInfo `json:"resultList"`
		ResultCount int           `json:"resultCount"`
	}
	projectInfo struct {
		ID                 string   `json:"id"`
		Name               string   `json:"name"`
		Description        string   `json:"description"`
		RelativePath       string   `json:"relativePath"`
		EnableRelativePath bool     `json:"enableRelativePath"`
		Tags               []string `json:"tags"`
	}
)

// getCertificateBody is GET …/certificates/{name}/ as
// keys-secrets_crud_get-certificate.mdx shows it: the certificate with one
// entry per environment it is deployed to.
func getCertificateBody(c *Certificate) certificateList {
	return certificateList{Success: true, ResultList: []certificate{certificateBody(c, true)}}
}

// listCertificatesBody is GET …/certificates/ as
// keys-secrets_crud_list-certificates.mdx shows it, sorted by name and, as
// its notes say, without the certificates' content: the dates, thumbprint
// and subject are all a client gets.
func listCertificatesBody(p *project) statusCertificateList {
	out := statusCertificateList{Status: "SUCCESS", ResultList: []certificate{}}
	for _, name := range slices.Sorted(maps.Keys(p.certificates)) {
		out.ResultList = append(out.ResultList, certificateBody(p.certificates[name], false))
	}
	return out
}

// certificateBody is c with one entry per environment, each computed from
// the certificate that environment serves; with content, the certificate's
// base64 DER too.
func certificateBody(c *Certificate, content bool) certificate {
	out := certificate{Name: c.Name, Description: c.Description, CertificateEnvironmentList: []certificateEnvironment{}}
	for _, env := range c.Environments {
		pemText := c.PEM
		if served, ok := c.Served[env]; ok {
			pemText = served
		}
		if pemText == "" {
			continue // a stale environment that never had it
		}
		e := environmentEntry(pemText, c.Alias)
		if !content {
			e.Base64EncodedContent = ""
		}
		e.EnvironmentName = env
		out.CertificateEnvironmentList = append(out.CertificateEnvironmentList, e)
	}
	return out
}

// environmentEntry is what an environment serving pemText under alias
// shows: the thumbprint, subject and dates computed from the certificate.
func environmentEntry(pemText, alias string) certificateEnvironment {
	e := certificateEnvironment{SHA1Thumbprint: thumbprint(pemText), Alias: alias}
	if der := jobs.FirstCertificate(pemText); der != nil {
		e.Base64EncodedContent = base64.StdEncoding.EncodeToString(der)
		if x, err := x509.ParseCertificate(der); err == nil {
			e.StartDate = x.NotBefore.UTC().Format("2006-01-02T15:04:05.000Z")
			e.EndDate = x.NotAfter.UTC().Format("2006-01-02T15:04:05.000Z")
			e.SubjectDN = x.Subject.String()
		}
	}
	return e
}

// listProjects is GET /apiops/projects/ as projects_list-projects.mdx shows
// it. Callers hold s.mu.
func (s *Simulator) listProjects() (int, any) {
	names := make([]string, 0, len(s.projects))
	for name := range s.projects {
		names = append(names, name)
	}
	slices.Sort(names)
	out := projectList{Status: "SUCCESS", ResultList: []projectInfo{}, ResultCount: len(names)}
	for i, name := range names {
		sum := sha1.Sum([]byte(name)) //nolint:gosec // an id, not a signature
		out.ResultList = append(out.ResultList, projectInfo{
			ID: hex.EncodeToString(sum[:12]), Name: name, Description: name,
			RelativePath: "/" + strings.ToLower(name), EnableRelativePath: i%2 == 0, Tags: []string{},
		})
	}
	return http.StatusOK, out
}

// thumbprint is the SHA-1 thumbprint of the first certificate in pemText,
// upper-case hex as Apinizer shows it; "" if there is none.
func thumbprint(pemText string) string {
	t, _ := jobs.Thumbprint(pemText)
	return t
}
