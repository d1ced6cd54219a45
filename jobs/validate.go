package jobs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on job fields. They bound what one job can make the worker parse,
// hold and send, and are far above what a real certificate rotation needs.
const (
	// MaxIDSize is the longest jobId, in bytes. The id travels as the
	// Nats-Msg-Id header and is stored in JetStream's duplicate window.
	MaxIDSize = 255
	// MaxNameSize is the longest projectName, certificateName, keyName,
	// username, alias or environment name, in bytes.
	MaxNameSize = 255
	// MaxEnvironments is the most entries environmentList may have.
	MaxEnvironments = 64
	// MaxPEMSize is the longest pemEncodedFile, in bytes.
	MaxPEMSize = 256 << 10
	// MaxPEMBlocks is the most PEM blocks pemEncodedFile may hold: a leaf
	// certificate and its chain.
	MaxPEMBlocks = 16
)

// errNilJob is what Validate and Publish report for a nil job.
var errNilJob = fmt.Errorf("jobs: nil job: %w", ErrRequired)

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CertificateUpdate) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("certificateName", j.CertificateName),
		j.CertificateFields.validate(),
		checkEnum("jwkUpdateAction", j.JWKUpdateAction, JWKUpdateNullify, JWKUpdateUpdate),
		checkEnum("updateScope", j.UpdateScope, UpdateScopeSameProject, UpdateScopeAllProjects),
		checkScope(j.JWKUpdateAction, j.UpdateScope),
		checkThumbprint(j.ExpectedThumbprint),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CertificateCreate) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("certificateName", j.CertificateName),
		j.CertificateFields.validate(),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CertificateDelete) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("certificateName", j.CertificateName),
		checkEnum("jwkDeleteAction", j.JWKDeleteAction, JWKDeleteNullify, JWKDeleteDelete),
		checkThumbprint(j.ExpectedThumbprint),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *KeyDelete) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("keyName", j.KeyName),
		checkEnum("jwkDeleteAction", j.JWKDeleteAction, JWKDeleteNullify, JWKDeleteDelete),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CredentialDelete) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("username", j.Username),
	)
}

// Validate reports the first rule the job breaks, as a *FieldError.
func (j *CredentialPublicKeyDelete) Validate() error {
	if j == nil {
		return errNilJob
	}
	return first(
		checkID(j.JobID),
		checkName("projectName", j.ProjectName),
		checkName("username", j.Username),
	)
}

// validate checks the form fields Apinizer requires, all of them, for a
// certificate create or update.
func (f *CertificateFields) validate() error {
	return first(
		checkText("alias", f.Alias, MaxNameSize, false),
		checkText("certificateDescription", f.CertificateDescription, 0, true),
		checkEnvironments(f.EnvironmentList),
		checkPEM(f.PEMEncodedFile),
	)
}

// first returns the first non-nil error. The checks are cheap next to
// decoding, so evaluating them all keeps each Validate a plain list of rules.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: ErrInvalidValue, Detail: fmt.Sprintf(format, args...)}
}

func checkID(id string) error {
	if id == "" {
		return &FieldError{Field: "jobId", Err: ErrRequired}
	}
	if d := idProblem(id); d != "" {
		return &FieldError{Field: "jobId", Err: ErrInvalidValue, Detail: d}
	}
	return nil
}

// idProblem describes why id cannot be a job id, or returns "". The id is sent
// as a NATS header value and derived into the result's Nats-Msg-Id, so it must
// be one printable token.
func idProblem(id string) string {
	if len(id) > MaxIDSize {
		return fmt.Sprintf("is %d bytes, max %d", len(id), MaxIDSize)
	}
	if !utf8.ValidString(id) {
		return "is not valid UTF-8"
	}
	for _, r := range id {
		switch {
		case unicode.IsControl(r):
			return fmt.Sprintf("contains control character %U", r)
		case unicode.IsSpace(r):
			return fmt.Sprintf("contains white space %U", r)
		}
	}
	return ""
}

// checkName checks a value that becomes a path segment of the Apinizer URL.
// Escaping alone is not trusted: a proxy or servlet container in front of
// Apinizer may decode %2F or normalise "..", so any value that could change
// the path after such decoding is refused, and '%' with it. White space is
// refused because Apinizer does not allow it in names (getting-started,
// "Path Parameter Rules"), so such a job could only fail at Apinizer.
func checkName(field, s string) error {
	if s == "" {
		return &FieldError{Field: field, Err: ErrRequired}
	}
	switch {
	case len(s) > MaxNameSize:
		return invalid(field, "is %d bytes, max %d", len(s), MaxNameSize)
	case !utf8.ValidString(s):
		return invalid(field, "is not valid UTF-8")
	case s == ".":
		return invalid(field, `is "."`)
	case strings.Contains(s, ".."):
		return invalid(field, `contains ".."`)
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return invalid(field, "contains control character %U", r)
		case strings.ContainsRune(`/\%?#`, r):
			return invalid(field, "contains %q", string(r))
		case unicode.IsSpace(r):
			return invalid(field, "contains white space %U; Apinizer does not allow spaces in names", r)
		}
	}
	return nil
}

// checkText checks a required form field value: valid UTF-8, no control
// characters except, where multiline is set, tab, CR and LF; at most limit
// bytes unless limit is 0.
func checkText(field, s string, limit int, multiline bool) error {
	if s == "" {
		return &FieldError{Field: field, Err: ErrRequired}
	}
	if limit > 0 && len(s) > limit {
		return invalid(field, "is %d bytes, max %d", len(s), limit)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\t' || r == '\n' || r == '\r')) {
			return invalid(field, "contains control character %U", r)
		}
	}
	return nil
}

// checkEnvironments checks environmentList. Apinizer receives it as one
// comma-joined form field, so a name with a comma would silently become two
// environments, and names with surrounding spaces may be trimmed into
// duplicates.
func checkEnvironments(envs []string) error {
	const field = "environmentList"
	switch {
	case envs == nil:
		return &FieldError{Field: field, Err: ErrRequired}
	case len(envs) == 0:
		return invalid(field, "is empty")
	case len(envs) > MaxEnvironments:
		return invalid(field, "has %d entries, max %d", len(envs), MaxEnvironments)
	}
	seen := make(map[string]bool, len(envs))
	for i, env := range envs {
		if d := environmentProblem(env); d != "" {
			return invalid(field, "entry %d %s", i, d)
		}
		if seen[env] {
			return invalid(field, "entry %d repeats %s", i, quote(env))
		}
		seen[env] = true
	}
	return nil
}

func environmentProblem(env string) string {
	switch {
	case env == "":
		return "is empty"
	case len(env) > MaxNameSize:
		return fmt.Sprintf("is %d bytes, max %d", len(env), MaxNameSize)
	case !utf8.ValidString(env):
		return "is not valid UTF-8"
	case strings.TrimSpace(env) != env:
		return "has leading or trailing white space"
	}
	for _, r := range env {
		switch {
		case unicode.IsControl(r):
			return fmt.Sprintf("contains control character %U", r)
		case r == ',':
			return `contains ","`
		}
	}
	return ""
}

// checkEnum accepts the empty value, which means Apinizer's default, and the
// documented values.
func checkEnum[T ~string](field string, v T, allowed ...T) error {
	if v == "" || slices.Contains(allowed, v) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return invalid(field, "%s is not one of %s", quote(string(v)), strings.Join(names, ", "))
}

// checkScope refuses an updateScope that Apinizer would ignore: it only
// matters when JWKs are re-parsed, so setting it otherwise is a producer bug.
func checkScope(action JWKUpdateAction, scope UpdateScope) error {
	if scope != "" && action != JWKUpdateUpdate {
		return invalid("updateScope", "is set but jwkUpdateAction is not UPDATE")
	}
	return nil
}

var pemBegin = []byte("-----BEGIN ")

// checkPEM checks that pemEncodedFile holds only X.509 certificates in PEM
// blocks, with nothing else but white space between them. Details never
// quote the file: it may hold a key the producer should not have sent.
func checkPEM(s string) error {
	const field = "pemEncodedFile"
	if s == "" {
		return &FieldError{Field: field, Err: ErrRequired}
	}
	// A private key must never reach Apinizer or a log, so look for one
	// before anything else, in any letter case, anywhere in the text: a
	// malformed key block that the PEM parser would skip still counts.
	if strings.Contains(strings.ToUpper(s), "PRIVATE KEY") {
		return invalid(field, "contains a private key")
	}
	if len(s) > MaxPEMSize {
		return invalid(field, "is %d bytes, max %d", len(s), MaxPEMSize)
	}
	rest := []byte(s)
	n := 0
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		n++
		if n > MaxPEMBlocks {
			return invalid(field, "has more than %d PEM blocks", MaxPEMBlocks)
		}
		if !bytes.HasPrefix(rest, pemBegin) {
			return invalid(field, "has text outside PEM blocks")
		}
		// Decode one block at a time, up to the next BEGIN line, so that a
		// malformed block is reported instead of skipped.
		end := len(rest)
		if i := bytes.Index(rest[len(pemBegin):], pemBegin); i >= 0 {
			end = len(pemBegin) + i
		}
		block, tail := pem.Decode(rest[:end])
		switch {
		case block == nil:
			return invalid(field, "block %d is not a well-formed PEM block", n)
		case len(bytes.TrimSpace(tail)) > 0:
			return invalid(field, "has text outside PEM blocks")
		case block.Type != "CERTIFICATE":
			return invalid(field, "block %d is not a CERTIFICATE block", n)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return invalid(field, "block %d is not a valid X.509 certificate", n)
		}
		rest = rest[end:]
	}
	if n == 0 {
		return invalid(field, "contains no PEM block")
	}
	return nil
}
