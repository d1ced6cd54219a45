// Package jobs defines the apiops job messages that producers publish to NATS
// JetStream and the result events the worker publishes back: one Go type per
// subject, the validation rules taken from Apinizer's APIOps reference, and a
// producer helper.
//
// The package knows nothing of consumers or HTTP: it turns bytes into validated
// values and back.
package jobs

// Job subjects, as fixed by the wire contract.
const (
	SubjectCertificateUpdate         = "apiops.certificate.update"
	SubjectCertificateCreate         = "apiops.certificate.create"
	SubjectCertificateDelete         = "apiops.certificate.delete"
	SubjectCertificateApply          = "apiops.certificate.apply"
	SubjectKeyDelete                 = "apiops.key.delete"
	SubjectCredentialDelete          = "apiops.credential.delete"
	SubjectCredentialPublicKeyDelete = "apiops.credential.publickey.delete"

	SubjectKeyCreate                   = "apiops.key.create"
	SubjectKeyUpdate                   = "apiops.key.update"
	SubjectCredentialPublicKeySet      = "apiops.credential.publickey.set"
	SubjectCredentialCertificateSet    = "apiops.credential.certificate.set"
	SubjectCredentialCertificateDelete = "apiops.credential.certificate.delete"
	SubjectJWKParse                    = "apiops.jwk.parse"
	SubjectJWKDelete                   = "apiops.jwk.delete"
)

// Subjects lists every job subject in a stable order.
var Subjects = []string{
	SubjectCertificateUpdate,
	SubjectCertificateCreate,
	SubjectCertificateDelete,
	SubjectCertificateApply,
	SubjectKeyDelete,
	SubjectCredentialDelete,
	SubjectCredentialPublicKeyDelete,
	SubjectKeyCreate,
	SubjectKeyUpdate,
	SubjectCredentialPublicKeySet,
	SubjectCredentialCertificateSet,
	SubjectCredentialCertificateDelete,
	SubjectJWKParse,
	SubjectJWKDelete,
}

// Kind is the kind of Apinizer resource a job changes.
type Kind string

// Resource kinds. A credential, its public key assignment and its certificate
// assignment are one resource for ordering purposes, so every credential
// subject maps to KindCredential.
const (
	KindCertificate Kind = "certificate"
	KindKey         Kind = "key"
	KindCredential  Kind = "credential"
	KindJWK         Kind = "jwk"
)

// ResourceKey identifies the Apinizer resource a job changes. Jobs with equal
// keys are applied one at a time and in stream order.
type ResourceKey struct {
	Project string
	Kind    Kind
	Name    string
}

// String returns "kind/project/name". Names are validated to contain no "/",
// so the form is unambiguous.
func (k ResourceKey) String() string {
	return string(k.Kind) + "/" + k.Project + "/" + k.Name
}

// Job is a validated job. The concrete types are *CertificateUpdate,
// *CertificateCreate, *CertificateDelete, *CertificateApply, *KeyCreate,
// *KeyUpdate, *KeyDelete, *CredentialDelete, *CredentialPublicKeyDelete,
// *CredentialPublicKeySet, *CredentialCertificateSet,
// *CredentialCertificateDelete, *JWKParse and *JWKDelete; callers switch on
// them.
type Job interface {
	// Subject is the job's NATS subject, one of Subjects.
	Subject() string
	// ID is the idempotency key: the body's jobId or, failing that, the
	// Nats-Msg-Id header.
	ID() string
	// Resource identifies the Apinizer resource the job changes.
	Resource() ResourceKey
	// Validate reports the first rule the job breaks, as a *FieldError
	// matching ErrRequired, ErrInvalidValue or ErrMustBeStated. A nil job
	// reports ErrRequired.
	Validate() error
}

// JWKDeleteAction says what Apinizer does with JWKs derived from a deleted
// certificate or key. Empty means Apinizer's default, NULLIFY.
type JWKDeleteAction string

// Documented JWKDeleteAction values.
const (
	JWKDeleteNullify JWKDeleteAction = "NULLIFY"
	JWKDeleteDelete  JWKDeleteAction = "DELETE"
)

// JWKUpdateAction says what Apinizer does with JWKs derived from an updated
// certificate. Empty means Apinizer's default, NULLIFY.
type JWKUpdateAction string

// Documented JWKUpdateAction values.
const (
	JWKUpdateNullify JWKUpdateAction = "NULLIFY"
	JWKUpdateUpdate  JWKUpdateAction = "UPDATE"
)

// UpdateScope says which projects' JWKs are re-parsed when JWKUpdateAction is
// UPDATE.
type UpdateScope string

// Documented UpdateScope values.
const (
	UpdateScopeSameProject UpdateScope = "SAME_PROJECT"
	UpdateScopeAllProjects UpdateScope = "ALL_PROJECTS"
)

// CertificateFields are the multipart form fields Apinizer requires, all of
// them, for both certificate create and update.
type CertificateFields struct {
	Alias                  string   `json:"alias"`
	CertificateDescription string   `json:"certificateDescription"`
	EnvironmentList        []string `json:"environmentList"`
	// PEMEncodedFile is the PEM text itself: one or more CERTIFICATE blocks
	// and no private key. It is sent as the multipart file part of the same
	// name, and never logged or echoed in results.
	PEMEncodedFile string `json:"pemEncodedFile"`
}

// CertificateUpdate replaces a certificate and redeploys it:
// PUT /apiops/projects/{projectName}/certificates/{certificateName}/.
type CertificateUpdate struct {
	JobID           string `json:"jobId"`
	ProjectName     string `json:"projectName"`
	CertificateName string `json:"certificateName"`
	CertificateFields
	JWKUpdateAction JWKUpdateAction `json:"jwkUpdateAction,omitempty"`
	UpdateScope     UpdateScope     `json:"updateScope,omitempty"`
	// ExpectedThumbprint, if set, is a compare-and-swap: the update is
	// made only if no listed environment serves a certificate with another
	// SHA-1 thumbprint (hex, any case, colons allowed).
	ExpectedThumbprint string `json:"expectedThumbprint,omitempty"`
}

// CertificateCreate creates and deploys a certificate:
// POST /apiops/projects/{projectName}/certificates/.
type CertificateCreate struct {
	JobID           string `json:"jobId"`
	ProjectName     string `json:"projectName"`
	CertificateName string `json:"certificateName"`
	CertificateFields
}

// CertificateDelete deletes and undeploys a certificate:
// DELETE /apiops/projects/{projectName}/certificates/{certificateName}/.
type CertificateDelete struct {
	JobID           string          `json:"jobId"`
	ProjectName     string          `json:"projectName"`
	CertificateName string          `json:"certificateName"`
	JWKDeleteAction JWKDeleteAction `json:"jwkDeleteAction,omitempty"`
	// ExpectedThumbprint, if set, is a compare-and-swap: the delete is made
	// only if no environment serves a certificate with another SHA-1
	// thumbprint.
	ExpectedThumbprint string `json:"expectedThumbprint,omitempty"`
}

// KeyDelete deletes and undeploys a key:
// DELETE /apiops/projects/{projectName}/keys/{keyName}/.
type KeyDelete struct {
	JobID           string          `json:"jobId"`
	ProjectName     string          `json:"projectName"`
	KeyName         string          `json:"keyName"`
	JWKDeleteAction JWKDeleteAction `json:"jwkDeleteAction,omitempty"`
}

// CredentialDelete deletes and undeploys a credential:
// DELETE /apiops/projects/{projectName}/credentials/{username}/.
type CredentialDelete struct {
	JobID       string `json:"jobId"`
	ProjectName string `json:"projectName"`
	Username    string `json:"username"`
}

// CredentialPublicKeyDelete removes a credential's public key assignment and
// redeploys the credential:
// DELETE /apiops/projects/{projectName}/credentials/{username}/publicKey/.
type CredentialPublicKeyDelete struct {
	JobID       string `json:"jobId"`
	ProjectName string `json:"projectName"`
	Username    string `json:"username"`
}

func (*CertificateUpdate) Subject() string         { return SubjectCertificateUpdate }
func (*CertificateCreate) Subject() string         { return SubjectCertificateCreate }
func (*CertificateDelete) Subject() string         { return SubjectCertificateDelete }
func (*KeyDelete) Subject() string                 { return SubjectKeyDelete }
func (*CredentialDelete) Subject() string          { return SubjectCredentialDelete }
func (*CredentialPublicKeyDelete) Subject() string { return SubjectCredentialPublicKeyDelete }

func (j *CertificateUpdate) ID() string         { return j.JobID }
func (j *CertificateCreate) ID() string         { return j.JobID }
func (j *CertificateDelete) ID() string         { return j.JobID }
func (j *KeyDelete) ID() string                 { return j.JobID }
func (j *CredentialDelete) ID() string          { return j.JobID }
func (j *CredentialPublicKeyDelete) ID() string { return j.JobID }

func (j *CertificateUpdate) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCertificate, Name: j.CertificateName}
}

func (j *CertificateCreate) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCertificate, Name: j.CertificateName}
}

func (j *CertificateDelete) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCertificate, Name: j.CertificateName}
}

func (j *KeyDelete) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindKey, Name: j.KeyName}
}

func (j *CredentialDelete) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCredential, Name: j.Username}
}

func (j *CredentialPublicKeyDelete) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCredential, Name: j.Username}
}
