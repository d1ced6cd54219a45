package jobs

// CredentialPublicKeySet assigns a PUBLIC_KEY to a credential, replacing any
// key it had, and redeploys the credential:
// PUT /apiops/projects/{projectName}/credentials/{username}/publicKey/{keyName}/.
// The assignment belongs to the credential: its resource is the credential.
type CredentialPublicKeySet struct {
	JobID       string `json:"jobId"`
	ProjectName string `json:"projectName"`
	Username    string `json:"username"`
	KeyName     string `json:"keyName"`
}

// CredentialCertificateSet assigns a certificate to a credential, replacing
// any it had, and redeploys the credential:
// PUT /apiops/projects/{projectName}/credentials/{username}/certificate/{certificateName}/.
type CredentialCertificateSet struct {
	JobID           string `json:"jobId"`
	ProjectName     string `json:"projectName"`
	Username        string `json:"username"`
	CertificateName string `json:"certificateName"`
}

// CredentialCertificateDelete removes a credential's certificate assignment
// and redeploys the credential:
// DELETE /apiops/projects/{projectName}/credentials/{username}/certificate/.
type CredentialCertificateDelete struct {
	JobID       string `json:"jobId"`
	ProjectName string `json:"projectName"`
	Username    string `json:"username"`
}

func (*CredentialPublicKeySet) Subject() string      { return SubjectCredentialPublicKeySet }
func (*CredentialCertificateSet) Subject() string    { return SubjectCredentialCertificateSet }
func (*CredentialCertificateDelete) Subject() string { return SubjectCredentialCertificateDelete }

func (j *CredentialPublicKeySet) ID() string      { return j.JobID }
func (j *CredentialCertificateSet) ID() string    { return j.JobID }
func (j *CredentialCertificateDelete) ID() string { return j.JobID }

func (j *CredentialPublicKeySet) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCredential, Name: j.Username}
}

func (j *CredentialCertificateSet) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCredential, Name: j.Username}
}

func (j *CredentialCertificateDelete) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindCredential, Name: j.Username}
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CredentialPublicKeySet) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("username", j.Username),
		checkName("keyName", j.KeyName),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CredentialCertificateSet) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("username", j.Username),
		checkName("certificateName", j.CertificateName),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CredentialCertificateDelete) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("username", j.Username),
	)
}
