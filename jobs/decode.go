package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// MaxBodySize is the largest job body Decode accepts, in bytes. It is checked
// before the body is parsed, so that a hostile message cannot make the worker
// parse or hold more than this. A pemEncodedFile of MaxPEMSize fits with room
// to spare after JSON escaping.
const MaxBodySize = 1 << 20

// Decode turns a message from one of the job subjects into a validated Job.
// The subject, bare or scoped (ParseSubject), picks the concrete type; a
// scoped subject's project must be the body's projectName. The header may be
// nil.
//
// The body must be at most MaxBodySize bytes of valid UTF-8 holding one JSON
// object. Names are matched exactly: a member the job type does not have, one
// written in another letter case and one given twice in any object are
// refused (ErrUnknownField, ErrDuplicateField), since a misspelled optional
// field would otherwise be dropped and the job run with Apinizer's default.
// Producers extend jobs through documented fields only. The job id is the
// body's jobId or, if that is absent, the Nats-Msg-Id header; when both are
// present they must agree.
//
// Every failure is a *DecodeError whose Err is a *FieldError or wraps
// ErrUnknownSubject, ErrMalformed or ErrTooLarge. Failures are reported in
// this order: subject, size, JSON syntax, clear secret material, names,
// types, id, rules, project.
func Decode(subject string, header nats.Header, body []byte) (Job, error) {
	headerID := header.Get(nats.MsgIdHdr)
	job, bodyID, err := decode(subject, headerID, body)
	if err != nil {
		return nil, &DecodeError{Subject: subject, JobID: knownID(bodyID, headerID), Err: err}
	}
	return job, nil
}

// decode does Decode's work and also returns the body's jobId as far as it
// was read, for the DecodeError.
func decode(subject, headerID string, body []byte) (job Job, bodyID string, err error) {
	bare, project, ok := ParseSubject(subject)
	if !ok {
		return nil, "", ErrUnknownSubject
	}
	job, id := newJob(bare)
	if job == nil {
		return nil, "", ErrUnknownSubject
	}
	if len(body) > MaxBodySize {
		return nil, "", fmt.Errorf("%w: body is %d bytes, max %d", ErrTooLarge, len(body), MaxBodySize)
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD, changing
	// names on their way to Apinizer; refuse it instead.
	if !utf8.Valid(body) {
		return nil, "", fmt.Errorf("%w: body is not valid UTF-8", ErrMalformed)
	}
	// encoding/json checks the syntax of the whole body before it fills in
	// anything, so a body that is not JSON is malformed whatever its names.
	uerr := json.Unmarshal(body, job)
	if syntaxErr := (*json.SyntaxError)(nil); errors.As(uerr, &syntaxErr) {
		return nil, "", unmarshalError(uerr)
	}
	// Clear secret material before anything else: whatever else is wrong,
	// the operator must learn that the stream holds it.
	if err := checkClearBody(subject, body); err != nil {
		bodyID, _ = checkNames(body, schemaOf(job))
		return nil, bodyID, err
	}
	// Names before types: until they are known to be exact, *id may hold
	// a value from a "JOBID" member.
	bodyID, err = checkNames(body, schemaOf(job))
	if err != nil {
		return nil, bodyID, err
	}
	if uerr != nil {
		return nil, *id, unmarshalError(uerr)
	}
	bodyID = *id
	switch {
	case bodyID == "":
		*id = headerID
	case headerID != "" && headerID != bodyID:
		return nil, bodyID, &FieldError{
			Field:  "jobId",
			Err:    ErrIDMismatch,
			Detail: fmt.Sprintf("body has %s, Nats-Msg-Id header has %s", quote(bodyID), quote(headerID)),
		}
	}
	if err := job.Validate(); err != nil {
		return nil, bodyID, err
	}
	if err := CheckProject(job, project); err != nil {
		return nil, bodyID, err
	}
	return job, bodyID, nil
}

// newJob returns a zero job of the type for subject and a pointer to its
// JobID, or nil for an unknown subject.
func newJob(subject string) (Job, *string) {
	switch subject {
	case SubjectCertificateUpdate:
		j := new(CertificateUpdate)
		return j, &j.JobID
	case SubjectCertificateCreate:
		j := new(CertificateCreate)
		return j, &j.JobID
	case SubjectCertificateDelete:
		j := new(CertificateDelete)
		return j, &j.JobID
	case SubjectCertificateApply:
		j := new(CertificateApply)
		return j, &j.JobID
	case SubjectKeyDelete:
		j := new(KeyDelete)
		return j, &j.JobID
	case SubjectCredentialDelete:
		j := new(CredentialDelete)
		return j, &j.JobID
	case SubjectCredentialPublicKeyDelete:
		j := new(CredentialPublicKeyDelete)
		return j, &j.JobID
	case SubjectKeyCreate:
		j := new(KeyCreate)
		return j, &j.JobID
	case SubjectKeyUpdate:
		j := new(KeyUpdate)
		return j, &j.JobID
	case SubjectCredentialPublicKeySet:
		j := new(CredentialPublicKeySet)
		return j, &j.JobID
	case SubjectCredentialCertificateSet:
		j := new(CredentialCertificateSet)
		return j, &j.JobID
	case SubjectCredentialCertificateDelete:
		j := new(CredentialCertificateDelete)
		return j, &j.JobID
	case SubjectJWKParse:
		j := new(JWKParse)
		return j, &j.JobID
	case SubjectJWKDelete:
		j := new(JWKDelete)
		return j, &j.JobID
	}
	return nil, nil
}

// unmarshalError classifies a json.Unmarshal failure: a field of the wrong
// JSON type is that field's invalid value; anything else is a malformed body.
func unmarshalError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		// Field is a path through Go structs ("CertificateFields.alias");
		// job bodies are flat, so its last element is the JSON name.
		field := typeErr.Field[strings.LastIndexByte(typeErr.Field, '.')+1:]
		return &FieldError{Field: field, Err: ErrInvalidValue, Detail: "is a JSON " + typeErr.Value}
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// knownID picks the id a failed result can be published under: the body's
// jobId, else the header's, provided it is itself a valid id.
func knownID(bodyID, headerID string) string {
	for _, id := range []string{bodyID, headerID} {
		if id != "" && idProblem(id) == "" {
			return id
		}
	}
	return ""
}
