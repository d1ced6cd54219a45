package jobs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// FuzzDecode checks that Decode never panics, that every failure is a
// *DecodeError matching exactly one sentinel, and that every job it accepts
// is valid, has an id, names its resource without a '/', and survives a
// Marshal and Decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases(f) {
		f.Add(tc.subject, tc.msgID, tc.body)
	}
	for _, s := range jobs.Subjects {
		f.Add(s, "", exampleBody(f, s))
		f.Add(s, exampleJob(f, s).ID(), editBody(f, s, unset("jobId")))
	}
	fx := testPEM(f)
	const upd = jobs.SubjectCertificateUpdate
	hostile := []struct {
		subject, msgID string
		body           []byte
	}{
		{jobs.SubjectKeyDelete, "", editBody(f, jobs.SubjectKeyDelete, set("keyName", "../x"))},
		{jobs.SubjectCredentialDelete, "", editBody(f, jobs.SubjectCredentialDelete, set("username", "a%2Fb"))},
		{jobs.SubjectCredentialDelete, "", editBody(f, jobs.SubjectCredentialDelete, set("projectName", "My\x00Project"))},
		{jobs.SubjectCredentialDelete, "id\x00", []byte("{\"projectName\":\"p\",\"username\":\"u\x00\"}")},
		{jobs.SubjectCredentialDelete, "", []byte(`{"jobId":"j","projectName":"p","username":"\ud800"}`)},
		{jobs.SubjectCredentialDelete, "", []byte(`{"jobId":"j","projectName":"p","username":"a\u002fb"}`)},
		{jobs.SubjectCredentialDelete, "", []byte(`{"jobId":"j","JOBID":"k","projectName":"p","username":"u"}`)},
		{upd, "", append([]byte(`{"pad":"`), append([]byte(strings.Repeat("x", 2<<20)), `"}`...)...)},
		{upd, "", []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))},
		{upd, "", editBody(f, upd, set("pemEncodedFile", fx.cert+fx.pkcs8Key))},
		{upd, "", editBody(f, upd, set("pemEncodedFile", fx.cert+fx.rsaKey))},
		{upd, "", editBody(f, upd, set("environmentList", environments(5000)))},
	}
	for _, h := range hostile {
		f.Add(h.subject, h.msgID, h.body)
	}

	sentinels := []error{
		jobs.ErrUnknownSubject, jobs.ErrMalformed, jobs.ErrTooLarge,
		jobs.ErrRequired, jobs.ErrInvalidValue, jobs.ErrIDMismatch,
		jobs.ErrUnknownField, jobs.ErrDuplicateField, jobs.ErrProjectMismatch,
		jobs.ErrSecretInClear,
	}
	f.Fuzz(func(t *testing.T, subject, msgID string, body []byte) {
		var header nats.Header
		if msgID != "" {
			header = nats.Header{nats.MsgIdHdr: {msgID}}
		}
		job, err := jobs.Decode(subject, header, body)
		if err != nil {
			var de *jobs.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %v is a %T, want *jobs.DecodeError", err, err)
			}
			var matched []error
			for _, s := range sentinels {
				if errors.Is(err, s) {
					matched = append(matched, s)
				}
			}
			if len(matched) != 1 {
				t.Fatalf("Decode error %v matches %v, want exactly one sentinel", err, matched)
			}
			if wantCodes[matched[0]] != de.Code() {
				t.Fatalf("Code() = %q for %v, want %q", de.Code(), err, wantCodes[matched[0]])
			}
			if de.JobID != "" {
				probe := &jobs.CredentialDelete{JobID: de.JobID, ProjectName: "p", Username: "u"}
				if err := probe.Validate(); err != nil {
					t.Fatalf("DecodeError.JobID %q is not a valid id: %v", de.JobID, err)
				}
			}
			return
		}
		if err := job.Validate(); err != nil {
			t.Fatalf("decoded job does not re-validate: %v", err)
		}
		if job.ID() == "" {
			t.Fatal("decoded job has an empty ID")
		}
		if job.Subject() != subject {
			t.Fatalf("decoded job's Subject() = %q, want %q", job.Subject(), subject)
		}
		if name := job.Resource().Name; strings.Contains(name, "/") {
			t.Fatalf("Resource().Name %q contains '/'", name)
		}
		again, err := jobs.Marshal(job)
		if err != nil {
			t.Fatalf("Marshal of a decoded job: %v", err)
		}
		roundTrip, err := jobs.Decode(subject, nil, again)
		if err != nil {
			t.Fatalf("Decode of a marshalled job: %v", err)
		}
		if diff := cmp.Diff(job, roundTrip); diff != "" {
			t.Fatalf("round trip (-decoded +again):\n%s", diff)
		}
	})
}
