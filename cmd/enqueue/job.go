package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// runJob publishes one job described by flags: "certificate update --project
// P --name N ...".
func runJob(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	words := 2
	if len(args) >= 3 && args[0] == "credential" && (args[1] == "publickey" || args[1] == "certificate") {
		words = 3
	}
	if len(args) < words {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", strings.Join(args, " "))
	}
	subject := "apiops." + strings.Join(args[:words], ".")
	if !slices.Contains(jobs.Subjects, subject) {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", strings.Join(args[:words], " "))
	}
	if secretSubjects[subject] {
		return runSecretJob(ctx, subject, args[words:], getenv, stdout, stderr)
	}

	var (
		c                                         common
		project, name, pemFile, alias, desc, envs string
		jwkUpdate, scope, jwkDelete, expected     string
	)
	fs := flag.NewFlagSet("enqueue "+strings.Join(args[:words], " "), flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, getenv)
	fs.StringVar(&c.id, "id", "", "job id, the idempotency key (default: generated)")
	fs.StringVar(&project, "project", "", "Apinizer project name")
	fs.StringVar(&name, "name", "", "certificate name, key name or credential username")
	certificate := subject == jobs.SubjectCertificateUpdate || subject == jobs.SubjectCertificateCreate || subject == jobs.SubjectCertificateApply
	if certificate {
		fs.StringVar(&pemFile, "pem", "", "PEM file holding the certificate(s)")
		fs.StringVar(&pemFile, "pem-file", "", "PEM file holding the certificate(s); the same as --pem")
		fs.StringVar(&alias, "alias", "", "certificate alias")
		fs.StringVar(&desc, "description", "", "certificate description")
		fs.StringVar(&envs, "env", "", "comma-separated environments to deploy to")
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
	if err := fs.Parse(args[words:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.id == "" {
		c.id = newJobID(subject, name)
	}

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
	return publishOne(ctx, &c, subject, job, stdout, stderr)
}

// publishOne validates a job built from flags and publishes it on its
// subject, scoped with --scoped.
func publishOne(ctx context.Context, c *common, subject string, job jobs.Job, stdout, stderr io.Writer) error {
	if err := job.Validate(); err != nil {
		return fmt.Errorf("invalid job: %w", err)
	}
	wire, err := wireSubject(subject, job, c.scoped)
	if err != nil {
		return fmt.Errorf("--scoped: %w", err)
	}
	return publishJobs(ctx, c, []outgoing{{job, wire}}, stdout, stderr)
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
