package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// newJobBase is the start every job command shares: its name, its
// summary, the publish flags, --id and --project.
func newJobBase(subject, use string, c *common, project *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: "Publish a " + strings.ReplaceAll(strings.TrimPrefix(subject, "apiops."), ".", " ") + " job (" + subject + ")",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	c.registerPublish(fs)
	fs.StringVar(&c.id, "id", "", "job id, the idempotency key (default: generated)")
	fs.StringVar(project, "project", "", "Apinizer project name")
	return cmd
}

// newJobCmd is the command publishing one job of subject described by flags:
// "enqueue certificate update --project P --name N ...".
func newJobCmd(subject, use string, c *common, e env) *cobra.Command {
	if secretSubjects[subject] {
		return newSecretJobCmd(subject, use, c, e)
	}
	var (
		project, name, pemFile, alias, desc, envs string
		jwkUpdate, scope, jwkDelete, expected     string
	)
	cmd := newJobBase(subject, use, c, &project)
	fs := cmd.Flags()
	fs.StringVar(&name, "name", "", "certificate name, key name or credential username")
	required := []string{"project", "name"}
	certificate := subject == jobs.SubjectCertificateUpdate || subject == jobs.SubjectCertificateCreate || subject == jobs.SubjectCertificateApply
	if certificate {
		fs.StringVar(&pemFile, "pem-file", "", "PEM file holding the certificate(s) (also --pem)")
		fs.StringVar(&alias, "alias", "", "certificate alias")
		fs.StringVar(&desc, "description", "", "certificate description")
		fs.StringVar(&envs, "env", "", "comma-separated environments to deploy to")
		required = append(required, "pem-file", "alias", "description", "env")
	}
	switch subject {
	case jobs.SubjectCertificateUpdate, jobs.SubjectCertificateApply:
		fs.StringVar(&jwkUpdate, "jwk-update-action", "", "NULLIFY or UPDATE (required for apply)")
		fs.StringVar(&scope, "update-scope", "", "SAME_PROJECT or ALL_PROJECTS (with --jwk-update-action UPDATE)")
	case jobs.SubjectCertificateDelete, jobs.SubjectKeyDelete:
		fs.StringVar(&jwkDelete, "jwk-delete-action", "", "NULLIFY or DELETE")
	}
	switch subject {
	case jobs.SubjectCertificateUpdate, jobs.SubjectCertificateApply, jobs.SubjectCertificateDelete:
		fs.StringVar(&expected, "expected-thumbprint", "", "SHA-1 thumbprint the certificate must have now, or nothing is written (hex, colons allowed)")
	}
	markRequired(cmd, required...)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		given := c.resolveID(subject, name, e.stderr)
		var fields jobs.CertificateFields
		if certificate {
			if pemFile == "" {
				return errors.New("--pem-file (or --pem) is required")
			}
			b, err := os.ReadFile(pemFile)
			if err != nil {
				return fmt.Errorf("--pem-file: %w", err)
			}
			fields = jobs.CertificateFields{Alias: alias, CertificateDescription: desc, EnvironmentList: splitList(envs), PEMEncodedFile: string(b)}
		}
		var job jobs.Job
		switch subject {
		case jobs.SubjectCertificateUpdate, jobs.SubjectCertificateApply:
			u := jobs.CertificateUpdate{JobID: c.id, ProjectName: project, CertificateName: name, CertificateFields: fields,
				JWKUpdateAction: jobs.JWKUpdateAction(jwkUpdate), UpdateScope: jobs.UpdateScope(scope), ExpectedThumbprint: expected}
			job = &u
			if subject == jobs.SubjectCertificateApply {
				job = &jobs.CertificateApply{CertificateUpdate: u}
			}
		case jobs.SubjectCertificateCreate:
			job = &jobs.CertificateCreate{JobID: c.id, ProjectName: project, CertificateName: name, CertificateFields: fields}
		case jobs.SubjectCertificateDelete:
			job = &jobs.CertificateDelete{JobID: c.id, ProjectName: project, CertificateName: name, JWKDeleteAction: jobs.JWKDeleteAction(jwkDelete),
				ExpectedThumbprint: expected}
		case jobs.SubjectKeyDelete:
			job = &jobs.KeyDelete{JobID: c.id, ProjectName: project, KeyName: name, JWKDeleteAction: jobs.JWKDeleteAction(jwkDelete)}
		case jobs.SubjectCredentialDelete:
			job = &jobs.CredentialDelete{JobID: c.id, ProjectName: project, Username: name}
		case jobs.SubjectCredentialPublicKeyDelete:
			job = &jobs.CredentialPublicKeyDelete{JobID: c.id, ProjectName: project, Username: name}
		}
		return publishOne(cmd.Context(), c, subject, job, given, e.stdout, e.stderr)
	}
	return cmd
}

// resolveID sets the job id: --id as given, or a generated one when none is
// given or --force-new-id ignores it. It reports whether the id is the
// user's, which may name an earlier job.
func (c *common) resolveID(subject, name string, stderr io.Writer) (given bool) {
	if c.id != "" && !c.forceNewID {
		return true
	}
	old := c.id
	c.id = newJobID(subject, name)
	if old != "" {
		fmt.Fprintf(stderr, "--force-new-id: publishing as job %q, not %q\n", c.id, old)
	}
	return false
}

// publishOne validates a job built from flags and publishes it on its
// subject, scoped with --scoped. given says whether its id is the user's.
func publishOne(ctx context.Context, c *common, subject string, job jobs.Job, given bool, stdout, stderr io.Writer) error {
	if err := job.Validate(); err != nil {
		return fmt.Errorf("invalid job: %w", err)
	}
	wire, err := wireSubject(subject, job, c.scoped)
	if err != nil {
		return fmt.Errorf("--scoped: %w", err)
	}
	return publishJobs(ctx, c, []outgoing{{job: job, subject: wire, givenID: given}}, stdout, stderr)
}

// newJobID makes a unique, readable job id. Producers that may send the same
// change twice should choose their own id instead (see README).
func newJobID(subject, name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	op := strings.ReplaceAll(strings.TrimPrefix(subject, "apiops."), ".", "-")
	return fmt.Sprintf("%s-%s-%s-%s", op, name, time.Now().UTC().Format("20060102T150405"), hex.EncodeToString(b[:]))
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// noArgs refuses arguments to a command that takes none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q (%s -h lists the flags)", args[0], cmd.CommandPath())
	}
	return nil
}

// markRequired marks flags required: help shows them so, and every missing
// one is named in one error.
func markRequired(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		f := cmd.Flags().Lookup(n)
		if f == nil {
			panic("markRequired: no flag " + n) // a flag name misspelled here
		}
		f.Usage += " (required)"
		_ = cmd.MarkFlagRequired(n)
	}
}
