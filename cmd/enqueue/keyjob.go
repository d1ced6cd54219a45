package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// secretSubjects are the job kinds of the rotation toolset: keys, a
// credential's public key and certificate, JWKs.
var secretSubjects = map[string]bool{
	jobs.SubjectKeyCreate:                   true,
	jobs.SubjectKeyUpdate:                   true,
	jobs.SubjectCredentialPublicKeySet:      true,
	jobs.SubjectCredentialCertificateSet:    true,
	jobs.SubjectCredentialCertificateDelete: true,
	jobs.SubjectJWKParse:                    true,
	jobs.SubjectJWKDelete:                   true,
}

// newSecretJobCmd publishes one job of secretSubjects described by flags. Key
// material read with --content-file is base64-encoded and, for SECRET_KEY
// and PRIVATE_KEY, encrypted to the worker's age recipient here, so that
// the clear key never leaves this machine.
func newSecretJobCmd(subject, use string, c *common, e env) *cobra.Command {
	var (
		project, name, desc, envs, alias            string
		keyType, algorithm, contentFile, recipients string
		jwkUpdate, scope, keyName, certificate      string
		useType, jwkAlgorithm                       string
	)
	cmd := newJobBase(subject, use, c, &project)
	fs := cmd.Flags()
	required := []string{"project", "name"}
	switch subject {
	case jobs.SubjectKeyCreate, jobs.SubjectKeyUpdate:
		fs.StringVar(&name, "name", "", "key name")
		fs.StringVar(&keyType, "type", "", "SECRET_KEY, PRIVATE_KEY or PUBLIC_KEY")
		fs.StringVar(&algorithm, "algorithm", "", "AES, DES, DESede or RSA (SECRET_KEY only; required on create)")
		fs.StringVar(&desc, "description", "", "key description")
		fs.StringVar(&envs, "env", "", "comma-separated environments to deploy to")
		fs.StringVar(&alias, "alias", "", "key alias in every environment")
		fs.StringVar(&contentFile, "content-file", "", "file holding the key (PEM, or a secret key's raw bytes); sent base64-encoded")
		fs.StringVar(&recipients, "recipient", e.getenv("WORKER_AGE_RECIPIENT"), "the worker's age recipient(s), comma-separated ($WORKER_AGE_RECIPIENT); required for SECRET_KEY and PRIVATE_KEY")
		required = append(required, "type")
		if subject == jobs.SubjectKeyCreate {
			required = append(required, "env", "content-file")
		}
		if subject == jobs.SubjectKeyUpdate {
			fs.StringVar(&jwkUpdate, "jwk-update-action", "", "NULLIFY or UPDATE")
			fs.StringVar(&scope, "update-scope", "", "SAME_PROJECT or ALL_PROJECTS (with --jwk-update-action UPDATE)")
		}
	case jobs.SubjectJWKParse, jobs.SubjectJWKDelete:
		fs.StringVar(&name, "name", "", "JWK name")
		if subject == jobs.SubjectJWKParse {
			fs.StringVar(&certificate, "certificate", "", "certificate to parse the JWK from")
			fs.StringVar(&envs, "env", "", "environment whose certificate is parsed")
			fs.StringVar(&useType, "use-type", "", "SIGNATURE or ENCRYPTION")
			fs.StringVar(&jwkAlgorithm, "algorithm", "", "JWA algorithm fitting the certificate's key, e.g. RS256")
			fs.StringVar(&desc, "description", "", "JWK description")
			required = append(required, "certificate", "env", "use-type", "algorithm")
		}
	default:
		fs.StringVar(&name, "name", "", "credential username")
		switch subject {
		case jobs.SubjectCredentialPublicKeySet:
			fs.StringVar(&keyName, "key", "", "PUBLIC_KEY to assign")
			required = append(required, "key")
		case jobs.SubjectCredentialCertificateSet:
			fs.StringVar(&certificate, "certificate", "", "certificate to assign")
			required = append(required, "certificate")
		}
	}
	markRequired(cmd, required...)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		given := c.resolveID(subject, name, e.stderr)
		var job jobs.Job
		switch subject {
		case jobs.SubjectKeyCreate, jobs.SubjectKeyUpdate:
			fields, err := keyFields(jobs.KeyType(keyType), jobs.KeyAlgorithm(algorithm), desc, splitList(envs), alias, contentFile, recipients)
			if err != nil {
				return err
			}
			if subject == jobs.SubjectKeyCreate {
				job = &jobs.KeyCreate{JobID: c.id, ProjectName: project, KeyName: name, KeyFields: fields}
			} else {
				job = &jobs.KeyUpdate{JobID: c.id, ProjectName: project, KeyName: name, KeyFields: fields,
					JWKUpdateAction: jobs.JWKUpdateAction(jwkUpdate), UpdateScope: jobs.UpdateScope(scope)}
			}
		case jobs.SubjectCredentialPublicKeySet:
			job = &jobs.CredentialPublicKeySet{JobID: c.id, ProjectName: project, Username: name, KeyName: keyName}
		case jobs.SubjectCredentialCertificateSet:
			job = &jobs.CredentialCertificateSet{JobID: c.id, ProjectName: project, Username: name, CertificateName: certificate}
		case jobs.SubjectCredentialCertificateDelete:
			job = &jobs.CredentialCertificateDelete{JobID: c.id, ProjectName: project, Username: name}
		case jobs.SubjectJWKParse:
			job = &jobs.JWKParse{JobID: c.id, ProjectName: project, JWKName: name, Description: desc, CertificateName: certificate,
				EnvironmentName: envs, UseType: jobs.JWKUseType(useType), Algorithm: jwkAlgorithm}
		case jobs.SubjectJWKDelete:
			job = &jobs.JWKDelete{JobID: c.id, ProjectName: project, JWKName: name}
		}
		return publishOne(cmd.Context(), c, subject, job, given, e.stdout, e.stderr)
	}
	return cmd
}

// keyFields builds a key body: the file's bytes base64-encoded as Apinizer
// wants them, encrypted to the recipients for secret types.
func keyFields(typ jobs.KeyType, alg jobs.KeyAlgorithm, desc string, envs []string, alias, contentFile, recipients string) (jobs.KeyFields, error) {
	f := jobs.KeyFields{Description: desc, KeyType: typ, Algorithm: alg}
	if contentFile == "" && len(envs) == 0 {
		return f, nil // an update of the description or algorithm only
	}
	if contentFile == "" {
		return f, errors.New("--content-file is required with --env")
	}
	raw, err := os.ReadFile(contentFile)
	if err != nil {
		return f, fmt.Errorf("--content-file: %w", err)
	}
	content := base64.StdEncoding.EncodeToString(raw)
	clear(raw)
	sealed := ""
	if typ.Secret() {
		if sealed, err = seal(content, recipients); err != nil {
			return f, err
		}
		content = ""
	}
	for _, env := range envs {
		f.CryptoKeyInfoEnvironmentList = append(f.CryptoKeyInfoEnvironmentList,
			jobs.KeyEnvironment{EnvironmentName: env, Content: content, EncryptedContent: sealed, Alias: alias})
	}
	return f, nil
}

// seal encrypts content to every recipient, ASCII-armored. Several
// recipients let producers address the worker's old and new identity
// during a rotation.
func seal(content, recipients string) (string, error) {
	if recipients == "" {
		return "", errors.New("--recipient (or $WORKER_AGE_RECIPIENT) is required: SECRET_KEY and PRIVATE_KEY material is only sent encrypted to the worker")
	}
	var rs []age.Recipient
	for _, s := range splitList(recipients) {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return "", fmt.Errorf("--recipient %q is not an age X25519 recipient (age1…)", s)
		}
		rs = append(rs, r)
	}
	return jobs.Seal(content, rs...)
}
