package jobs

import "strings"

// CertificateApply makes a certificate served, by content, in the listed
// environments: the worker reads it (GET …/certificates/{certificateName}/),
// writes nothing when every listed environment already serves the job's
// certificate (the SHA-1 thumbprint of its first CERTIFICATE block), and
// otherwise creates it (the POST of CertificateCreate) or updates it (the
// PUT of CertificateUpdate). The body is CertificateUpdate's, and the job
// shares its resource with the other certificate jobs, so that ordering,
// duplicates and supersession work as for them.
type CertificateApply struct {
	JobID           string `json:"jobId"`
	ProjectName     string `json:"projectName"`
	CertificateName string `json:"certificateName"`
	CertificateFields
	// JWKUpdateAction is required on apply: Apinizer's default, NULLIFY,
	// would cut the JWKs derived from the certificate on every rotation.
	JWKUpdateAction JWKUpdateAction `json:"jwkUpdateAction"`
	UpdateScope     UpdateScope     `json:"updateScope,omitempty"`
	// ExpectedThumbprint, if set, is a compare-and-swap, as on
	// CertificateUpdate.
	ExpectedThumbprint string `json:"expectedThumbprint,omitempty"`
}

func (*CertificateApply) Subject() string { return SubjectCertificateApply }

func (j *CertificateApply) ID() string { return j.JobID }

func (j *CertificateApply) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCertificate, Name: j.CertificateName}
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CertificateApply) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("certificateName", j.CertificateName),
		j.CertificateFields.validate(),
		checkStated(j.JWKUpdateAction),
		checkEnum("jwkUpdateAction", j.JWKUpdateAction, JWKUpdateNullify, JWKUpdateUpdate),
		checkEnum("updateScope", j.UpdateScope, UpdateScopeSameProject, UpdateScopeAllProjects),
		checkScope(j.JWKUpdateAction, j.UpdateScope),
		checkThumbprint(j.ExpectedThumbprint),
	)
}

// Update is the certificate.update the apply makes when the certificate
// exists, without the precondition, which the apply checks itself.
func (j *CertificateApply) Update() *CertificateUpdate {
	return &CertificateUpdate{
		JobID: j.JobID, ProjectName: j.ProjectName, CertificateName: j.CertificateName,
		CertificateFields: j.CertificateFields, JWKUpdateAction: j.JWKUpdateAction, UpdateScope: j.UpdateScope,
	}
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

// NormalizeThumbprint returns a valid expectedThumbprint as Apinizer shows
// thumbprints: upper-case hex without separators.
func NormalizeThumbprint(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, ":", ""))
}
