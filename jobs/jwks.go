package jobs

// JWKUseType is what a JWK is for.
type JWKUseType string

// Documented JWKUseType values.
const (
	JWKSignature  JWKUseType = "SIGNATURE"
	JWKEncryption JWKUseType = "ENCRYPTION"
)

// JWKParse derives a JWK from a certificate served in one environment:
// POST /apiops/projects/{projectName}/jwks/parse-from-certificate (no
// trailing slash). The job names the JWK jwkName, as delete does; it is
// sent as Apinizer's "name".
type JWKParse struct {
	JobID           string     `json:"jobId"`
	ProjectName     string     `json:"projectName"`
	JWKName         string     `json:"jwkName"`
	Description     string     `json:"description,omitempty"`
	CertificateName string     `json:"certificateName"`
	EnvironmentName string     `json:"environmentName"`
	UseType         JWKUseType `json:"useType"`
	// Algorithm is a JWA name that fits the certificate's key and UseType
	// ("RS256", not "RSA"). Apinizer checks the fit, knowing the key.
	Algorithm string `json:"algorithm"`
}

// JWKDelete deletes and undeploys a JWK:
// DELETE /apiops/projects/{projectName}/jwks/{jwkName}/.
type JWKDelete struct {
	JobID       string `json:"jobId"`
	ProjectName string `json:"projectName"`
	JWKName     string `json:"jwkName"`
}

func (*JWKParse) Subject() string  { return SubjectJWKParse }
func (*JWKDelete) Subject() string { return SubjectJWKDelete }
func (j *JWKParse) ID() string     { return j.JobID }
func (j *JWKDelete) ID() string    { return j.JobID }

func (j *JWKParse) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindJWK, Name: j.JWKName}
}

func (j *JWKDelete) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindJWK, Name: j.JWKName}
}

// jwkAlgorithms are the JWA names the parse page lists, for every key type
// and use; which fits the certificate is Apinizer's to check.
var jwkAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512",
	"ES256", "ES384", "ES512", "ES256K",
	"ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW",
	"ECDH-1PU", "ECDH-1PU+A128KW", "ECDH-1PU+A192KW", "ECDH-1PU+A256KW",
	"HS256", "HS384", "HS512",
	"A128KW", "A192KW", "A256KW", "A128GCMKW", "A192GCMKW", "A256GCMKW", "DIR",
	"PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW",
	"EdDSA",
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *JWKParse) Validate() error {
	if j == nil {
		return errNilJob
	}
	var desc error
	if j.Description != "" {
		desc = checkText("description", j.Description, 0, true)
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("jwkName", j.JWKName),
		desc,
		checkName("certificateName", j.CertificateName),
		checkRequired("environmentName", j.EnvironmentName),
		checkEnvironmentName(j.EnvironmentName),
		checkRequired("useType", string(j.UseType)),
		checkEnum("useType", j.UseType, JWKSignature, JWKEncryption),
		checkRequired("algorithm", j.Algorithm),
		checkEnum("algorithm", j.Algorithm, jwkAlgorithms...),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *JWKDelete) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("jwkName", j.JWKName),
	)
}

func checkRequired(field, v string) error {
	if v == "" {
		return &FieldError{Field: field, Err: ErrRequired}
	}
	return nil
}

func checkEnvironmentName(env string) error {
	if env == "" {
		return nil
	}
	if d := environmentProblem(env); d != "" {
		return invalid("environmentName", "%s", d)
	}
	return nil
}
