package jobs

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// KeyType is the type of an Apinizer key. SECRET_KEY and PRIVATE_KEY
// material is secret: a job carries it only encrypted (encryptedContent).
type KeyType string

// Documented KeyType values.
const (
	KeySecret  KeyType = "SECRET_KEY"
	KeyPrivate KeyType = "PRIVATE_KEY"
	KeyPublic  KeyType = "PUBLIC_KEY"
)

// Secret reports whether material of this type must travel encrypted.
func (t KeyType) Secret() bool { return t == KeySecret || t == KeyPrivate }

// KeyAlgorithm is a SECRET_KEY's symmetric algorithm. Apinizer compares it
// case-sensitively: "DESede", not "desede".
type KeyAlgorithm string

// Documented KeyAlgorithm values.
const (
	AlgorithmAES    KeyAlgorithm = "AES"
	AlgorithmDES    KeyAlgorithm = "DES"
	AlgorithmDESede KeyAlgorithm = "DESede"
	AlgorithmRSA    KeyAlgorithm = "RSA"
)

// Limits on key material.
const (
	// MaxKeyContentSize is the longest content or encryptedContent of one
	// environment, in bytes.
	MaxKeyContentSize = 64 << 10
)

// KeyEnvironment is one entry of cryptoKeyInfoEnvironmentList: the key's
// material in one environment. Exactly one of Content (PUBLIC_KEY, base64)
// and EncryptedContent (SECRET_KEY, PRIVATE_KEY: the base64 Apinizer wants,
// encrypted to the worker's age recipient, ASCII-armored) is set.
type KeyEnvironment struct {
	EnvironmentName  string `json:"environmentName"`
	Content          string `json:"content,omitempty"`
	EncryptedContent string `json:"encryptedContent,omitempty"`
	Alias            string `json:"alias,omitempty"`
}

// KeyFields is the body of key create and update, as Apinizer's KeyCreateDTO
// names it; the key's name is the job's keyName.
type KeyFields struct {
	Description                  string           `json:"description,omitempty"`
	KeyType                      KeyType          `json:"keyType"`
	Algorithm                    KeyAlgorithm     `json:"algorithm,omitempty"`
	CryptoKeyInfoEnvironmentList []KeyEnvironment `json:"cryptoKeyInfoEnvironmentList"`
}

// KeyCreate creates and deploys a key: POST /apiops/projects/{projectName}/keys/.
type KeyCreate struct {
	JobID       string `json:"jobId"`
	ProjectName string `json:"projectName"`
	KeyName     string `json:"keyName"`
	KeyFields
}

// KeyUpdate replaces a key's material and redeploys it:
// PUT /apiops/projects/{projectName}/keys/{keyName}/. The key keeps its
// name: a rename would change the resource the worker orders jobs by.
type KeyUpdate struct {
	JobID       string `json:"jobId"`
	ProjectName string `json:"projectName"`
	KeyName     string `json:"keyName"`
	KeyFields
	JWKUpdateAction JWKUpdateAction `json:"jwkUpdateAction,omitempty"`
	UpdateScope     UpdateScope     `json:"updateScope,omitempty"`
}

func (*KeyCreate) Subject() string { return SubjectKeyCreate }
func (*KeyUpdate) Subject() string { return SubjectKeyUpdate }
func (j *KeyCreate) ID() string    { return j.JobID }
func (j *KeyUpdate) ID() string    { return j.JobID }

func (j *KeyCreate) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindKey, Name: j.KeyName}
}

func (j *KeyUpdate) Resource() ResourceKey {
	return ResourceKey{Project: j.ProjectName, Kind: KindKey, Name: j.KeyName}
}

// Validate reports the first rule the job breaks, as a *FieldError. Clear
// secret material matches ErrSecretInClear.
func (j *KeyCreate) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		j.checkClear(),
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("keyName", j.KeyName),
		j.KeyFields.validate(true),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError. Unlike
// Apinizer, which takes keyType as optional on update, the job must state
// it: the worker must know whether the material is secret.
func (j *KeyUpdate) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		j.checkClear(),
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("keyName", j.KeyName),
		j.KeyFields.validate(false),
		checkEnum("jwkUpdateAction", j.JWKUpdateAction, JWKUpdateNullify, JWKUpdateUpdate),
		checkEnum("updateScope", j.UpdateScope, UpdateScopeSameProject, UpdateScopeAllProjects),
		checkScope(j.JWKUpdateAction, j.UpdateScope),
	)
}

// validate checks the key body; checkClear has been run first, so that
// clear material is reported as what it is whatever else is wrong.
func (f *KeyFields) validate(create bool) error {
	if f.KeyType == "" {
		return &FieldError{Field: "keyType", Err: ErrRequired}
	}
	if err := checkEnum("keyType", f.KeyType, KeySecret, KeyPrivate, KeyPublic); err != nil {
		return err
	}
	switch {
	case f.KeyType == KeySecret && f.Algorithm == "" && create:
		return &FieldError{Field: "algorithm", Err: ErrRequired, Detail: "Apinizer requires it for SECRET_KEY"}
	case f.KeyType != KeySecret && f.Algorithm != "":
		return invalid("algorithm", "applies to SECRET_KEY only; omit it for %s", f.KeyType)
	}
	if err := checkEnum("algorithm", f.Algorithm, AlgorithmAES, AlgorithmDES, AlgorithmDESede, AlgorithmRSA); err != nil {
		return err
	}
	if f.Description != "" {
		if err := checkText("description", f.Description, 0, true); err != nil {
			return err
		}
	}
	return f.checkEnvironments(create)
}

// checkClear refuses secret material in clear: content on a SECRET_KEY or
// PRIVATE_KEY entry, or a PUBLIC_KEY content that holds a private key. The
// detail never quotes the material.
func (f *KeyFields) checkClear() error {
	for i, e := range f.CryptoKeyInfoEnvironmentList {
		field := "cryptoKeyInfoEnvironmentList/" + strconv.Itoa(i) + "/content"
		switch {
		case e.Content == "":
		case f.KeyType.Secret():
			return &FieldError{Field: field, Err: ErrSecretInClear, Detail: clearDetail(string(f.KeyType) + " material")}
		case holdsPrivateKey(e.Content):
			return &FieldError{Field: field, Err: ErrSecretInClear, Detail: clearDetail("a private key")}
		}
	}
	return nil
}

func clearDetail(what string) string {
	return what + " must travel encrypted to the worker's age recipient in encryptedContent; " +
		"the stream this job was published to still holds it in clear: purge it (docs/security.md)"
}

// holdsPrivateKey reports whether content, as it is or base64-decoded, has a
// private key's PEM type.
func holdsPrivateKey(content string) bool {
	if strings.Contains(strings.ToUpper(content), "PRIVATE KEY") {
		return true
	}
	raw, err := base64.StdEncoding.DecodeString(content)
	return err == nil && strings.Contains(strings.ToUpper(string(raw)), "PRIVATE KEY")
}

// ageArmorHeader begins an ASCII-armored age file.
const ageArmorHeader = "-----BEGIN AGE ENCRYPTED FILE-----"

// checkEnvironments checks cryptoKeyInfoEnvironmentList: required and not
// empty on create; on update, absent leaves the stored material untouched.
func (f *KeyFields) checkEnvironments(create bool) error {
	const field = "cryptoKeyInfoEnvironmentList"
	list := f.CryptoKeyInfoEnvironmentList
	switch {
	case list == nil && create:
		return &FieldError{Field: field, Err: ErrRequired}
	case list == nil:
		return nil
	case len(list) == 0:
		return invalid(field, "is empty")
	case len(list) > MaxEnvironments:
		return invalid(field, "has %d entries, max %d", len(list), MaxEnvironments)
	}
	seen := make(map[string]bool, len(list))
	for i, e := range list {
		at := field + "/" + strconv.Itoa(i) + "/"
		if e.EnvironmentName == "" {
			return &FieldError{Field: at + "environmentName", Err: ErrRequired}
		}
		if d := environmentProblem(e.EnvironmentName); d != "" {
			return invalid(at+"environmentName", "%s", d)
		}
		if seen[e.EnvironmentName] {
			return invalid(at+"environmentName", "repeats %s", quote(e.EnvironmentName))
		}
		seen[e.EnvironmentName] = true
		if e.Alias != "" {
			if err := checkText(at+"alias", e.Alias, MaxNameSize, false); err != nil {
				return err
			}
		}
		if err := f.checkMaterial(at, e); err != nil {
			return err
		}
	}
	return nil
}

// checkMaterial checks one entry's material: base64 content for a
// PUBLIC_KEY, an armored age file for secret types.
func (f *KeyFields) checkMaterial(at string, e KeyEnvironment) error {
	if !f.KeyType.Secret() {
		switch {
		case e.EncryptedContent != "":
			return invalid(at+"encryptedContent", "is for SECRET_KEY and PRIVATE_KEY material; send a PUBLIC_KEY in content")
		case e.Content == "":
			return &FieldError{Field: at + "content", Err: ErrRequired}
		case len(e.Content) > MaxKeyContentSize:
			return invalid(at+"content", "is %d bytes, max %d", len(e.Content), MaxKeyContentSize)
		}
		if _, err := base64.StdEncoding.DecodeString(e.Content); err != nil {
			return invalid(at+"content", "is not base64")
		}
		return nil
	}
	s := strings.TrimSpace(e.EncryptedContent)
	switch {
	case s == "":
		return &FieldError{Field: at + "encryptedContent", Err: ErrRequired, Detail: "the material encrypted to the worker's age recipient"}
	case len(s) > MaxKeyContentSize:
		return invalid(at+"encryptedContent", "is %d bytes, max %d", len(s), MaxKeyContentSize)
	case !strings.HasPrefix(s, ageArmorHeader):
		return invalid(at+"encryptedContent", "is not an ASCII-armored age file")
	}
	return nil
}

// Secret reports whether the job carries encrypted key material.
func (f *KeyFields) Secret() bool { return f.KeyType.Secret() }
