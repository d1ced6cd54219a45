package jobs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestApplyAndPreconditionRules(t *testing.T) {
	t.Parallel()
	const (
		apply = jobs.SubjectCertificateApply
		upd   = jobs.SubjectCertificateUpdate
		del   = jobs.SubjectCertificateDelete
	)
	const thumb = "0123456789abcdef0123456789ABCDEF01234567"
	cases := []struct {
		name    string
		subject string
		edits   []func(map[string]any)
		want    error  // nil: the job is accepted
		code    string // DecodeError.Code when refused
		detail  string // a part of the message when refused
	}{
		{"an apply without jwkUpdateAction is refused as invalid_job, saying why", apply,
			[]func(map[string]any){unset("jwkUpdateAction"), unset("updateScope")}, jobs.ErrMustBeStated, "invalid_job", "NULLIFY, cuts the JWKs"},
		{"an apply with an empty jwkUpdateAction is refused as invalid_job", apply,
			[]func(map[string]any){set("jwkUpdateAction", ""), unset("updateScope")}, jobs.ErrMustBeStated, "invalid_job", "jwkUpdateAction"},
		{"an apply stating NULLIFY is accepted", apply,
			[]func(map[string]any){set("jwkUpdateAction", "NULLIFY"), unset("updateScope")}, nil, "", ""},
		{"an apply with jwkUpdateAction outside its set is refused", apply,
			[]func(map[string]any){set("jwkUpdateAction", "KEEP")}, jobs.ErrInvalidValue, "invalid_field", "KEEP"},
		{"an apply without pemEncodedFile is refused as for update", apply,
			[]func(map[string]any){unset("pemEncodedFile")}, jobs.ErrRequired, "missing_field", "pemEncodedFile"},
		{"an apply without expectedThumbprint is accepted", apply,
			[]func(map[string]any){unset("expectedThumbprint")}, nil, "", ""},
		{"a thumbprint in mixed case without colons is accepted on update", upd,
			[]func(map[string]any){set("expectedThumbprint", thumb)}, nil, "", ""},
		{"a thumbprint with colons is accepted on delete", del,
			[]func(map[string]any){set("expectedThumbprint", "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67")}, nil, "", ""},
		{"a thumbprint one digit short is refused", upd,
			[]func(map[string]any){set("expectedThumbprint", thumb[:39])}, jobs.ErrInvalidValue, "invalid_field", "39 hex digits"},
		{"a SHA-256 thumbprint is refused", del,
			[]func(map[string]any){set("expectedThumbprint", strings.Repeat("ab", 32))}, jobs.ErrInvalidValue, "invalid_field", "expectedThumbprint"},
		{"a thumbprint with a non-hex digit is refused", apply,
			[]func(map[string]any){set("expectedThumbprint", "g"+thumb[1:])}, jobs.ErrInvalidValue, "invalid_field", "not hex"},
		{"a thumbprint as a number is refused", apply,
			[]func(map[string]any){set("expectedThumbprint", 12)}, jobs.ErrInvalidValue, "invalid_field", "expectedThumbprint"},
		{"expectedThumbprint in another letter case is an unknown field", upd,
			[]func(map[string]any){set("expectedthumbprint", thumb)}, jobs.ErrUnknownField, "invalid_job", "expectedthumbprint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			job, err := jobs.Decode(c.subject, nil, editBody(t, c.subject, c.edits...))
			if c.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			var de *jobs.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, %v; want a DecodeError matching %v", job, err, c.want)
			}
			if de.Code() != c.code || !strings.Contains(err.Error(), c.detail) {
				t.Errorf("code %q, message %q; want %q containing %q", de.Code(), err, c.code, c.detail)
			}
		})
	}
}

func TestApplySharesTheCertificateResource(t *testing.T) {
	t.Parallel()
	apply := exampleJob(t, jobs.SubjectCertificateApply)
	for _, s := range []string{jobs.SubjectCertificateUpdate, jobs.SubjectCertificateCreate, jobs.SubjectCertificateDelete} {
		if diff := cmp.Diff(exampleJob(t, s).Resource(), apply.Resource()); diff != "" {
			t.Errorf("apply's resource differs from %s's (-%s +apply):\n%s", s, s, diff)
		}
	}
}

func TestApplyWritesAreTheDocumentedCalls(t *testing.T) {
	t.Parallel()
	apply := exampleJob(t, jobs.SubjectCertificateApply).(*jobs.CertificateApply)
	upd, crt := apply.Update(), apply.Create()
	if err := upd.Validate(); err != nil || upd.ExpectedThumbprint != "" || upd.JWKUpdateAction != apply.JWKUpdateAction {
		t.Errorf("Update() = %+v (%v); want a valid update without the precondition, keeping jwkUpdateAction", upd, err)
	}
	if err := crt.Validate(); err != nil || crt.CertificateFields.PEMEncodedFile != apply.PEMEncodedFile {
		t.Errorf("Create() = %+v (%v); want a valid create with the apply's fields", crt, err)
	}
	if got := jobs.NormalizeThumbprint("a1:b2:c3"); got != "A1B2C3" {
		t.Errorf("NormalizeThumbprint = %q, want A1B2C3", got)
	}
}
