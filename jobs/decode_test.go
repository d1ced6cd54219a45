package jobs_test

import (
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// msgIDHeader returns a header carrying id as Nats-Msg-Id, or nil for "".
func msgIDHeader(id string) nats.Header {
	if id == "" {
		return nil
	}
	return nats.Header{nats.MsgIdHdr: []string{id}}
}

// wantCodes is the stable code of each sentinel; DecodeError.Code must keep it.
var wantCodes = map[error]string{
	jobs.ErrUnknownSubject:  "unknown_subject",
	jobs.ErrMalformed:       "malformed_job",
	jobs.ErrTooLarge:        "job_too_large",
	jobs.ErrRequired:        "missing_field",
	jobs.ErrInvalidValue:    "invalid_field",
	jobs.ErrIDMismatch:      "job_id_mismatch",
	jobs.ErrUnknownField:    "invalid_job",
	jobs.ErrDuplicateField:  "invalid_job",
	jobs.ErrProjectMismatch: "invalid_job",
	jobs.ErrSecretInClear:   "secret_in_clear",
}

// decodeCase is a message Decode must refuse, and how it must say so.
type decodeCase struct {
	name    string
	subject string
	msgID   string // Nats-Msg-Id header; "" sends none
	body    []byte
	want    error  // the sentinel
	field   string // FieldError.Field; "" when no single field is at fault
	jobID   string // DecodeError.JobID
}

// decodeCases lists one message per rule Decode enforces. FuzzDecode seeds
// its corpus with them.
func decodeCases(tb testing.TB) []decodeCase {
	tb.Helper()
	const (
		upd  = jobs.SubjectCertificateUpdate
		crt  = jobs.SubjectCertificateCreate
		del  = jobs.SubjectCertificateDelete
		key  = jobs.SubjectKeyDelete
		cred = jobs.SubjectCredentialDelete
		pub  = jobs.SubjectCredentialPublicKeyDelete
	)
	id := func(subject string) string { return exampleJob(tb, subject).ID() }
	fx := testPEM(tb)
	edit := func(subject string, edits ...func(map[string]any)) []byte {
		return editBody(tb, subject, edits...)
	}

	cases := []decodeCase{
		{
			name:    "a message on an unknown subject is refused",
			subject: "apiops.certificate.rename", msgID: "msg-1", body: exampleBody(tb, upd),
			want: jobs.ErrUnknownSubject, jobID: "msg-1",
		},
		{
			name:    "a message on a result subject is refused",
			subject: "apiops.results.certificate.update", body: exampleBody(tb, upd),
			want: jobs.ErrUnknownSubject,
		},
		{
			name:    "a message on the empty subject is refused",
			subject: "", body: exampleBody(tb, cred),
			want: jobs.ErrUnknownSubject,
		},
		{
			name:    "a body over MaxBodySize is refused before it is parsed",
			subject: upd, msgID: "msg-1",
			body: fmt.Appendf(nil, `{"jobId":"j-1","pad":%q}`, strings.Repeat("x", jobs.MaxBodySize)),
			want: jobs.ErrTooLarge, jobID: "msg-1",
		},
		{
			name:    "a body that is not UTF-8 is malformed",
			subject: cred, body: []byte("{\"jobId\":\"j-1\",\"projectName\":\"My\xffProject\",\"username\":\"u\"}"),
			want: jobs.ErrMalformed,
		},
		{
			name:    "a body that is not JSON is malformed",
			subject: cred, msgID: "msg-1", body: []byte("jobId=j-1&projectName=MyProject"),
			want: jobs.ErrMalformed, jobID: "msg-1",
		},
		{
			name:    "an empty body is malformed",
			subject: cred, body: nil,
			want: jobs.ErrMalformed,
		},
		{
			name:    "a JSON array body is malformed",
			subject: cred, body: []byte(`[{"jobId":"j-1"}]`),
			want: jobs.ErrMalformed,
		},
		{
			name:    "a JSON object followed by more data is malformed",
			subject: cred, body: append(exampleBody(tb, cred), "{}"...),
			want: jobs.ErrMalformed,
		},
		{
			name:    "JSON nested 20000 deep is malformed",
			subject: cred,
			body:    []byte(`{"jobId":"j-1","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`),
			want:    jobs.ErrMalformed,
		},
		{
			name:    "a string where environmentList wants an array names the field",
			subject: upd, body: edit(upd, set("environmentList", "production,staging")),
			want: jobs.ErrInvalidValue, field: "environmentList", jobID: id(upd),
		},
		{
			name:    "a number in environmentList names the field",
			subject: crt, body: edit(crt, set("environmentList", []any{1})),
			want: jobs.ErrInvalidValue, field: "environmentList", jobID: id(crt),
		},
		{
			name:    "an object for jobId names the field",
			subject: key, msgID: "msg-1", body: edit(key, set("jobId", map[string]any{})),
			want: jobs.ErrInvalidValue, field: "jobId", jobID: "msg-1",
		},
		{
			name:    "a job with neither jobId nor Nats-Msg-Id is refused",
			subject: cred, body: edit(cred, unset("jobId")),
			want: jobs.ErrRequired, field: "jobId",
		},
		{
			name:    "a job with an empty jobId and no Nats-Msg-Id is refused",
			subject: del, body: edit(del, set("jobId", "")),
			want: jobs.ErrRequired, field: "jobId",
		},
		{
			name:    "a jobId that differs from Nats-Msg-Id is refused",
			subject: cred, msgID: "another-job", body: exampleBody(tb, cred),
			want: jobs.ErrIDMismatch, field: "jobId", jobID: id(cred),
		},
		{
			name:    "a jobId longer than MaxIDSize is refused",
			subject: cred, body: edit(cred, set("jobId", strings.Repeat("j", jobs.MaxIDSize+1))),
			want: jobs.ErrInvalidValue, field: "jobId",
		},
		{
			name:    "a jobId with a space is refused",
			subject: cred, body: edit(cred, set("jobId", "rotate my certificate")),
			want: jobs.ErrInvalidValue, field: "jobId",
		},
		{
			name:    "a jobId with a control character is refused",
			subject: cred, body: edit(cred, set("jobId", "job\x01")),
			want: jobs.ErrInvalidValue, field: "jobId",
		},
		{
			name:    "a Nats-Msg-Id with a space is refused when the body has no jobId",
			subject: cred, msgID: "msg 1", body: edit(cred, unset("jobId")),
			want: jobs.ErrInvalidValue, field: "jobId",
		},
	}

	for _, s := range jobs.Subjects {
		cases = append(cases, decodeCase{
			name:    s + " without projectName is refused",
			subject: s, body: edit(s, unset("projectName")),
			want: jobs.ErrRequired, field: "projectName", jobID: id(s),
		})
	}

	names := []struct{ subject, field string }{
		{cred, "projectName"},
		{upd, "certificateName"},
		{crt, "certificateName"},
		{del, "certificateName"},
		{key, "keyName"},
		{cred, "username"},
		{pub, "username"},
	}
	badNames := []struct{ desc, value string }{
		{"containing a slash", "a/b"},
		{"containing a backslash", `a\b`},
		{"containing two dots", "a..b"},
		{"traversing to the parent", "../x"},
		{"equal to a dot", "."},
		{"containing NUL", "a\x00b"},
		{"containing a newline", "a\nb"},
		{"containing DEL", "a\x7fb"},
		{"containing a C1 control", "a\u0085b"},
		{"longer than MaxNameSize", strings.Repeat("n", jobs.MaxNameSize+1)},
		{"containing an encoded slash", "a%2Fb"},
		{"containing a percent sign", "100%"},
		{"containing a question mark", "a?b"},
		{"containing a hash", "a#b"},
		{"containing a space", "My Project"},
		{"containing a no-break space", "My\u00a0Project"},
		{"ending in a space", "my-key "},
	}
	for _, n := range names {
		cases = append(cases, decodeCase{
			name:    fmt.Sprintf("%s with an empty %s is refused", n.subject, n.field),
			subject: n.subject, body: edit(n.subject, set(n.field, "")),
			want: jobs.ErrRequired, field: n.field, jobID: id(n.subject),
		})
		for _, bad := range badNames {
			cases = append(cases, decodeCase{
				name:    fmt.Sprintf("%s with a %s %s is refused", n.subject, n.field, bad.desc),
				subject: n.subject, body: edit(n.subject, set(n.field, bad.value)),
				want: jobs.ErrInvalidValue, field: n.field, jobID: id(n.subject),
			})
		}
	}

	cases = append(cases,
		decodeCase{
			name:    "certificate.delete with an unknown jwkDeleteAction is refused",
			subject: del, body: edit(del, set("jwkDeleteAction", "PURGE")),
			want: jobs.ErrInvalidValue, field: "jwkDeleteAction", jobID: id(del),
		},
		decodeCase{
			name:    "key.delete with a lower-case jwkDeleteAction is refused",
			subject: key, body: edit(key, set("jwkDeleteAction", "delete")),
			want: jobs.ErrInvalidValue, field: "jwkDeleteAction", jobID: id(key),
		},
		decodeCase{
			name:    "certificate.update with jwkUpdateAction DELETE is refused",
			subject: upd, body: edit(upd, set("jwkUpdateAction", "DELETE")),
			want: jobs.ErrInvalidValue, field: "jwkUpdateAction", jobID: id(upd),
		},
		decodeCase{
			name:    "certificate.update with an unknown updateScope is refused",
			subject: upd, body: edit(upd, set("updateScope", "EVERYWHERE")),
			want: jobs.ErrInvalidValue, field: "updateScope", jobID: id(upd),
		},
		decodeCase{
			name:    "updateScope with jwkUpdateAction NULLIFY is refused",
			subject: upd, body: edit(upd, set("jwkUpdateAction", "NULLIFY")),
			want: jobs.ErrInvalidValue, field: "updateScope", jobID: id(upd),
		},
		decodeCase{
			name:    "updateScope without jwkUpdateAction is refused",
			subject: upd, body: edit(upd, unset("jwkUpdateAction")),
			want: jobs.ErrInvalidValue, field: "updateScope", jobID: id(upd),
		},
	)

	for _, s := range []string{upd, crt} {
		for _, field := range []string{"alias", "certificateDescription", "environmentList", "pemEncodedFile"} {
			cases = append(cases,
				decodeCase{
					name:    fmt.Sprintf("%s without %s is refused", s, field),
					subject: s, body: edit(s, unset(field)),
					want: jobs.ErrRequired, field: field, jobID: id(s),
				},
				decodeCase{
					name:    fmt.Sprintf("%s with a null %s is refused", s, field),
					subject: s, body: edit(s, set(field, nil)),
					want: jobs.ErrRequired, field: field, jobID: id(s),
				},
			)
		}
	}

	many := make([]string, jobs.MaxEnvironments+1)
	for i := range many {
		many[i] = fmt.Sprintf("env-%d", i)
	}
	for _, c := range []struct {
		desc  string
		field string
		value any
		want  error // ErrInvalidValue unless set
	}{
		{"an empty alias", "alias", "", jobs.ErrRequired},
		{"an alias with a control character", "alias", "alias\x00", nil},
		{"an alias longer than MaxNameSize", "alias", strings.Repeat("a", jobs.MaxNameSize+1), nil},
		{"an empty certificateDescription", "certificateDescription", "", jobs.ErrRequired},
		{"a certificateDescription with NUL", "certificateDescription", "line\x00", nil},
		{"an empty environmentList", "environmentList", []string{}, nil},
		{"an empty environment name", "environmentList", []string{"production", ""}, nil},
		{"a repeated environment", "environmentList", []string{"production", "staging", "production"}, nil},
		{"an environment with a newline", "environmentList", []string{"prod\nuction"}, nil},
		{"an environment with NUL", "environmentList", []string{"prod\x00"}, nil},
		{"an environment with a comma", "environmentList", []string{"production,staging"}, nil},
		{"an environment with a leading space", "environmentList", []string{" production"}, nil},
		{"an environment longer than MaxNameSize", "environmentList", []string{strings.Repeat("e", jobs.MaxNameSize+1)}, nil},
		{"more than MaxEnvironments environments", "environmentList", many, nil},
		{"an empty pemEncodedFile", "pemEncodedFile", "", jobs.ErrRequired},
		{"a PEM with a PRIVATE KEY block appended", "pemEncodedFile", fx.cert + fx.pkcs8Key, nil},
		{"a PEM with an RSA PRIVATE KEY block appended", "pemEncodedFile", fx.cert + fx.rsaKey, nil},
		{"a PEM that is only a private key", "pemEncodedFile", fx.pkcs8Key, nil},
		{"a PEM with a lower-case private key block", "pemEncodedFile", fx.cert + strings.ReplaceAll(fx.pkcs8Key, "PRIVATE KEY", "private key"), nil},
		{"a PEM longer than MaxPEMSize", "pemEncodedFile", fx.cert + strings.Repeat("\n", jobs.MaxPEMSize), nil},
		{"a PEM with more than MaxPEMBlocks blocks", "pemEncodedFile", strings.Repeat(fx.cert, jobs.MaxPEMBlocks+1), nil},
		{"a PEM of only white space", "pemEncodedFile", "\n \n", nil},
		{"a PEM with text before the block", "pemEncodedFile", "subject=CN=my-certificate\n" + fx.cert, nil},
		{"a PEM with text between blocks", "pemEncodedFile", fx.cert + "issuer=CN=ca\n" + fx.cert, nil},
		{"a PEM with a PUBLIC KEY block", "pemEncodedFile", fx.cert + fx.publicKey, nil},
		{"a PEM whose CERTIFICATE block is not X.509", "pemEncodedFile", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not a certificate")})), nil},
		{"a truncated PEM block", "pemEncodedFile", fx.cert[:len(fx.cert)/2], nil},
		{"base64 without PEM armour", "pemEncodedFile", "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n", nil},
	} {
		want := c.want
		if want == nil {
			want = jobs.ErrInvalidValue
		}
		cases = append(cases, decodeCase{
			name:    fmt.Sprintf("certificate.update with %s is refused", c.desc),
			subject: upd, body: edit(upd, set(c.field, c.value)),
			want: want, field: c.field, jobID: id(upd),
		})
	}
	cases = append(cases, keyDecodeCases(tb)...)
	return append(cases, strictCases(tb)...)
}

func TestDecodeRefusesEveryBrokenRule(t *testing.T) {
	t.Parallel()
	type outcome struct {
		Subject, JobID, Code, Field string
	}
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job, err := jobs.Decode(tc.subject, msgIDHeader(tc.msgID), tc.body)
			if job != nil {
				t.Errorf("Decode returned a %T along with its error", job)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want one matching %v", err, tc.want)
			}
			var de *jobs.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %v is a %T, want *jobs.DecodeError", err, err)
			}
			got := outcome{Subject: de.Subject, JobID: de.JobID, Code: de.Code()}
			if fe := (*jobs.FieldError)(nil); errors.As(err, &fe) {
				got.Field = fe.Field
			}
			want := outcome{Subject: tc.subject, JobID: tc.jobID, Code: wantCodes[tc.want], Field: tc.field}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Decode error %v (-want +got):\n%s", err, diff)
			}
			for _, leak := range []string{"-----", "MII"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error message %q contains PEM content %q", err, leak)
				}
			}
		})
	}
}

func TestDecodeAcceptsValidJobs(t *testing.T) {
	t.Parallel()
	fx := testPEM(t)
	tests := []struct {
		name    string
		subject string
		msgID   string
		body    []byte
		want    jobs.Job
	}{
		{
			name:    "a job with its id in the body and no header decodes",
			subject: jobs.SubjectKeyDelete,
			body:    exampleBody(t, jobs.SubjectKeyDelete),
			want:    exampleJob(t, jobs.SubjectKeyDelete),
		},
		{
			name:    "a job whose jobId equals Nats-Msg-Id decodes",
			subject: jobs.SubjectKeyDelete, msgID: "delete-2026-11-23-my-key",
			body: exampleBody(t, jobs.SubjectKeyDelete),
			want: exampleJob(t, jobs.SubjectKeyDelete),
		},
		{
			name:    "a job without jobId takes its id from Nats-Msg-Id",
			subject: jobs.SubjectCredentialDelete, msgID: "msg-42",
			body: editBody(t, jobs.SubjectCredentialDelete, unset("jobId")),
			want: &jobs.CredentialDelete{JobID: "msg-42", ProjectName: "MyProject", Username: "api-user"},
		},
		{
			name:    "omitted JWK actions mean Apinizer's defaults",
			subject: jobs.SubjectCertificateDelete,
			body:    editBody(t, jobs.SubjectCertificateDelete, unset("jwkDeleteAction")),
			want:    &jobs.CertificateDelete{JobID: "delete-2026-11-23-my-certificate", ProjectName: "MyProject", CertificateName: "my-certificate"},
		},
		{
			name:    "jwkUpdateAction UPDATE without updateScope decodes",
			subject: jobs.SubjectCertificateUpdate,
			body:    editBody(t, jobs.SubjectCertificateUpdate, unset("updateScope")),
			want: func() jobs.Job {
				j := exampleJob(t, jobs.SubjectCertificateUpdate).(*jobs.CertificateUpdate)
				j.UpdateScope = ""
				return j
			}(),
		},
		{
			name:    "a certificate chain of MaxPEMBlocks blocks decodes",
			subject: jobs.SubjectCertificateCreate,
			body:    editBody(t, jobs.SubjectCertificateCreate, set("pemEncodedFile", strings.Repeat(fx.cert, jobs.MaxPEMBlocks))),
			want: func() jobs.Job {
				j := exampleJob(t, jobs.SubjectCertificateCreate).(*jobs.CertificateCreate)
				j.PEMEncodedFile = strings.Repeat(fx.cert, jobs.MaxPEMBlocks)
				return j
			}(),
		},
		{
			name:    "names of MaxNameSize bytes in any script decode",
			subject: jobs.SubjectCredentialDelete,
			body: editBody(t, jobs.SubjectCredentialDelete,
				set("projectName", "Müşteri-Projesi"), set("username", strings.Repeat("ü", jobs.MaxNameSize/2))),
			want: &jobs.CredentialDelete{
				JobID: "delete-2026-11-23-api-user", ProjectName: "Müşteri-Projesi", Username: strings.Repeat("ü", jobs.MaxNameSize/2),
			},
		},
		{
			name:    "a multi-line description and MaxEnvironments environments decode",
			subject: jobs.SubjectCertificateUpdate,
			body: editBody(t, jobs.SubjectCertificateUpdate,
				set("certificateDescription", "Rotated by the scheduler.\r\n\tTicket: OPS-1"),
				set("environmentList", environments(jobs.MaxEnvironments))),
			want: func() jobs.Job {
				j := exampleJob(t, jobs.SubjectCertificateUpdate).(*jobs.CertificateUpdate)
				j.CertificateDescription = "Rotated by the scheduler.\r\n\tTicket: OPS-1"
				j.EnvironmentList = environments(jobs.MaxEnvironments)
				return j
			}(),
		},
	}
	for _, s := range jobs.Subjects {
		tests = append(tests, struct {
			name    string
			subject string
			msgID   string
			body    []byte
			want    jobs.Job
		}{
			name:    "the " + s + " example decodes",
			subject: s, msgID: exampleJob(t, s).ID(),
			body: exampleBody(t, s), want: exampleJob(t, s),
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := jobs.Decode(tc.subject, msgIDHeader(tc.msgID), tc.body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
			if got.Subject() != tc.subject {
				t.Errorf("Subject() = %q, want %q", got.Subject(), tc.subject)
			}
		})
	}
}

func environments(n int) []string {
	envs := make([]string, n)
	for i := range envs {
		envs[i] = fmt.Sprintf("env-%02d", i)
	}
	return envs
}

func TestValidateChecksPrivateKeyFirst(t *testing.T) {
	t.Parallel()
	fx := testPEM(t)
	want := jobs.FieldError{Field: "pemEncodedFile", Err: jobs.ErrInvalidValue, Detail: "contains a private key"}
	tests := []struct {
		name string
		pem  string
	}{
		{"a private key in an oversized PEM is reported as a private key", fx.pkcs8Key + strings.Repeat("\n", jobs.MaxPEMSize)},
		{"a private key after too many blocks is reported as a private key", strings.Repeat(fx.cert, jobs.MaxPEMBlocks+1) + fx.rsaKey},
		{"a private key after a broken block is reported as a private key", "junk\n" + fx.cert[:100] + fx.pkcs8Key},
		{"a private key with a broken header is reported as a private key", strings.Replace(fx.rsaKey, "-----BEGIN", "----BEGIN", 1) + fx.cert},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := exampleJob(t, jobs.SubjectCertificateCreate).(*jobs.CertificateCreate)
			j.PEMEncodedFile = tc.pem
			var got *jobs.FieldError
			if err := j.Validate(); !errors.As(err, &got) {
				t.Fatalf("Validate() = %v, want a *jobs.FieldError", err)
			}
			if diff := cmp.Diff(want, *got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateForProducers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		job   jobs.Job
		want  error
		field string
	}{
		{"a nil job is refused", (*jobs.KeyDelete)(nil), jobs.ErrRequired, ""},
		{"a zero job is refused for its missing jobId", &jobs.CertificateCreate{}, jobs.ErrRequired, "jobId"},
		{
			"a name that is not UTF-8 is refused",
			&jobs.CredentialDelete{JobID: "j-1", ProjectName: "MyProject", Username: "api\xffuser"},
			jobs.ErrInvalidValue, "username",
		},
		{
			"a jobId that is not UTF-8 is refused",
			&jobs.CredentialDelete{JobID: "j-\xff", ProjectName: "MyProject", Username: "api-user"},
			jobs.ErrInvalidValue, "jobId",
		},
		{
			"an environment that is not UTF-8 is refused",
			func() jobs.Job {
				j := exampleJob(t, jobs.SubjectCertificateUpdate).(*jobs.CertificateUpdate)
				j.EnvironmentList = []string{"prod\xff"}
				return j
			}(),
			jobs.ErrInvalidValue, "environmentList",
		},
		{
			"an empty but non-nil environmentList is refused as invalid",
			func() jobs.Job {
				j := exampleJob(t, jobs.SubjectCertificateCreate).(*jobs.CertificateCreate)
				j.EnvironmentList = []string{}
				return j
			}(),
			jobs.ErrInvalidValue, "environmentList",
		},
	}
	for _, s := range jobs.Subjects {
		tests = append(tests, struct {
			name  string
			job   jobs.Job
			want  error
			field string
		}{"the " + s + " example is valid", exampleJob(t, s), nil, ""})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.job.Validate()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want one matching %v", err, tc.want)
			}
			var got string
			if fe := (*jobs.FieldError)(nil); errors.As(err, &fe) {
				got = fe.Field
			}
			if got != tc.field {
				t.Errorf("Validate() = %v for field %q, want field %q", err, got, tc.field)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 40) // 80 bytes: cut at 64 on a rune boundary
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			"a field error names the field, the rule and the detail",
			&jobs.FieldError{Field: "certificateName", Err: jobs.ErrInvalidValue, Detail: `contains "/"`},
			`jobs: certificateName: invalid value: contains "/"`,
		},
		{
			"a field error without detail names the field and the rule",
			&jobs.FieldError{Field: "projectName", Err: jobs.ErrRequired},
			`jobs: projectName: required`,
		},
		{
			"a decode error names the subject and the job",
			mustDecodeError(t, jobs.SubjectKeyDelete, "", editBody(t, jobs.SubjectKeyDelete, set("keyName", "a/b"))),
			`jobs: decode "apiops.key.delete" job "delete-2026-11-23-my-key": keyName: invalid value: contains "/"`,
		},
		{
			"a decode error without a usable id names only the subject",
			mustDecodeError(t, jobs.SubjectKeyDelete, "", []byte("{")),
			`jobs: decode "apiops.key.delete": malformed job: unexpected end of JSON input`,
		},
		{
			"echoed values are quoted and cut to 64 bytes",
			mustDecodeError(t, jobs.SubjectKeyDelete, "", editBody(t, jobs.SubjectKeyDelete, set("jwkDeleteAction", long+"\n"))),
			`jobs: decode "apiops.key.delete" job "delete-2026-11-23-my-key": jwkDeleteAction: invalid value: "` +
				strings.Repeat("é", 32) + `"... is not one of NULLIFY, DELETE`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %s\nwant      %s", got, tc.want)
			}
		})
	}
}

func mustDecodeError(tb testing.TB, subject, msgID string, body []byte) error {
	tb.Helper()
	_, err := jobs.Decode(subject, msgIDHeader(msgID), body)
	if err == nil {
		tb.Fatalf("Decode(%s) succeeded, want an error", subject)
	}
	return err
}

func TestDecodeErrorCodeOfForeignError(t *testing.T) {
	t.Parallel()
	err := &jobs.DecodeError{Subject: jobs.SubjectKeyDelete, Err: errors.New("boom")}
	if got, want := err.Code(), "malformed_job"; got != want {
		t.Errorf("Code() = %q, want %q", got, want)
	}
}

func TestResource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject string
		want    jobs.ResourceKey
		str     string
	}{
		{jobs.SubjectCertificateUpdate, jobs.ResourceKey{Project: "MyProject", Kind: jobs.KindCertificate, Name: "my-certificate"}, "certificate/MyProject/my-certificate"},
		{jobs.SubjectCertificateCreate, jobs.ResourceKey{Project: "MyProject", Kind: jobs.KindCertificate, Name: "my-certificate"}, "certificate/MyProject/my-certificate"},
		{jobs.SubjectCertificateDelete, jobs.ResourceKey{Project: "MyProject", Kind: jobs.KindCertificate, Name: "my-certificate"}, "certificate/MyProject/my-certificate"},
		{jobs.SubjectKeyDelete, jobs.ResourceKey{Project: "MyProject", Kind: jobs.KindKey, Name: "my-key"}, "key/MyProject/my-key"},
		{jobs.SubjectCredentialDelete, jobs.ResourceKey{Project: "MyProject", Kind: jobs.KindCredential, Name: "api-user"}, "credential/MyProject/api-user"},
		{jobs.SubjectCredentialPublicKeyDelete, jobs.ResourceKey{Project: "MyProject", Kind: jobs.KindCredential, Name: "api-user"}, "credential/MyProject/api-user"},
	}
	for _, tc := range tests {
		t.Run("a "+tc.subject+" job changes "+tc.str, func(t *testing.T) {
			t.Parallel()
			got := exampleJob(t, tc.subject).Resource()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resource() (-want +got):\n%s", diff)
			}
			if got.String() != tc.str {
				t.Errorf("Resource().String() = %q, want %q", got.String(), tc.str)
			}
		})
	}
	t.Run("a credential and its public key assignment are one resource", func(t *testing.T) {
		t.Parallel()
		cred := exampleJob(t, jobs.SubjectCredentialDelete).Resource()
		pub := exampleJob(t, jobs.SubjectCredentialPublicKeyDelete).Resource()
		if cred != pub {
			t.Errorf("credential.delete key %v != credential.publickey.delete key %v", cred, pub)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, subject := range []string{jobs.SubjectCertificateUpdate, jobs.SubjectKeyDelete} {
		body := exampleBody(b, subject)
		header := msgIDHeader(exampleJob(b, subject).ID())
		b.Run(subject, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := jobs.Decode(subject, header, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
