package jobs

import "strings"

// CertificateApply makes a certificate served, by content, in the listed
// environments: the worker reads it (GET …/certificates/{certificateName}/),
// writes nothing when every listed environment already serves the job's
// certificate (the SHA-1 thumbprint of its first CERTIFICATE block), and
// otherwise creates it (the POST of CertificateCreate) or updates it (the
// PUT of CertificateUpdate). The body is CertificateUpdate's, embedded, so
// the job has its fields, its id and its resource: ordering, duplicates and
// supersession are shared with the other certificate jobs. Unlike on
// update, JWKUpdateAction is required: Apinizer's default, NULLIFY, would
// cut the JWKs derived from the certificate on every rotation.
type CertificateApply struct {
	CertificateUpdate
}

func (*CertificateApply) Subject() string { return SubjectCertificateApply }

// Validate reports the first rule the job breaks, as a *FieldError: those
// of CertificateUpdate, then a missing jwkUpdateAction (ErrMustBeStated).
func (j *CertificateApply) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(j.CertificateUpdate.Validate(), checkStated(j.JWKUpdateAction))
}

// Update is the certificate.update the apply makes when the certificate
// exists, without the precondition, which the apply checks itself.
func (j *CertificateApply) Update() *CertificateUpdate {
	u := j.CertificateUpdate
	u.ExpectedThumbprint = ""
	return &u
}

// Create is the certificate.create the apply makes when the certificate
// does not exist.
func (j *CertificateApply) Create() *CertificateCreate {
	return &CertificateCreate{
		JobID: j.JobID, ProjectName: j.ProjectName, CertificateName: j.CertificateName,
		CertificateFields: j.CertificateFields,
	}
}

// checkStated refuses an apply without jwkUpdateAction. An absent value
// would be Apinizer's default, NULLIFY, which silently cuts the JWKs derived
// from the certificate on each rotation: the producer must say that it
// wants that.
func checkStated(action JWKUpdateAction) error {
	if action != "" {
		return nil
	}
	return &FieldError{Field: "jwkUpdateAction", Err: ErrMustBeStated,
		Detail: "Apinizer's default, NULLIFY, cuts the JWKs derived from the certificate on every rotation; send UPDATE to re-parse them, or NULLIFY to cut them"}
}

// thumbprintHexLen is the length of a SHA-1 thumbprint in hex.
const thumbprintHexLen = 40

// checkThumbprint accepts an empty expectedThumbprint (no precondition) or
// a SHA-1 thumbprint: 40 hex digits in any case, optionally separated by
// colons.
func checkThumbprint(s string) error {
	if s == "" {
		return nil
	}
	const field = "expectedThumbprint"
	if len(s) > 2*thumbprintHexLen {
		return invalid(field, "is %d bytes, max %d", len(s), 2*thumbprintHexLen)
	}
	hex := strings.ReplaceAll(s, ":", "")
	if len(hex) != thumbprintHexLen {
		return invalid(field, "%s has %d hex digits, a SHA-1 thumbprint has %d", quote(s), len(hex), thumbprintHexLen)
	}
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return invalid(field, "%s is not hex: contains %q", quote(s), string(r))
		}
	}
	return nil
}

// thumbprintSeparators are dropped from a thumbprint: the colons a job may
// write, and the colons, spaces or dashes an Apinizer answer may show.
var thumbprintSeparators = strings.NewReplacer(":", "", " ", "", "-", "")

// NormalizeThumbprint returns a thumbprint, a valid expectedThumbprint or
// one read from Apinizer ("a1:b2:…", "a1 b2 …"), as Apinizer shows
// thumbprints: upper-case hex without separators.
func NormalizeThumbprint(s string) string {
	return strings.ToUpper(thumbprintSeparators.Replace(strings.TrimSpace(s)))
}
