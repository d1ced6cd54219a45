package jobs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// strictCases are the names encoding/json would match loosely or drop, each
// of which Decode refuses. decodeCases includes them, so that FuzzDecode
// starts from them too.
func strictCases(tb testing.TB) []decodeCase {
	tb.Helper()
	upd, key, cred, pub := jobs.SubjectCertificateUpdate, jobs.SubjectKeyDelete, jobs.SubjectCredentialDelete, jobs.SubjectCredentialPublicKeyDelete
	keyJob := func(members string) []byte {
		return []byte(`{"jobId":"k-1","projectName":"MyProject",` + members + `}`)
	}
	return []decodeCase{
		{
			name:    "a misspelled optional field is refused, not left to Apinizer's default",
			subject: key, body: keyJob(`"keyName":"my-key","jwkDeleteActoin":"DELETE"`),
			want: jobs.ErrUnknownField, field: "jwkDeleteActoin", jobID: "k-1",
		},
		{
			name:    "a field no job type has is refused",
			subject: pub, body: editBody(tb, pub, set("priority", map[string]any{"level": 3})),
			want: jobs.ErrUnknownField, field: "priority", jobID: exampleJob(tb, pub).ID(),
		},
		{
			name:    "a field written in another letter case beside the right one is refused",
			subject: key, body: keyJob(`"keyName":"a","KEYNAME":"b"`),
			want: jobs.ErrUnknownField, field: "KEYNAME", jobID: "k-1",
		},
		{
			name:    "a field written only in another letter case is refused, not reported missing",
			subject: key, body: keyJob(`"KeyName":"my-key"`),
			want: jobs.ErrUnknownField, field: "KeyName", jobID: "k-1",
		},
		{
			name:    "a field whose K is the Kelvin sign is refused",
			subject: key, body: keyJob(`"\u212aeyName":"my-key"`),
			want: jobs.ErrUnknownField, field: "\u212aeyName", jobID: "k-1",
		},
		{
			name:    "a field given twice is refused",
			subject: key, body: keyJob(`"keyName":"a","keyName":"b"`),
			want: jobs.ErrDuplicateField, field: "keyName", jobID: "k-1",
		},
		{
			name:    "a field given twice, once escaped, is refused",
			subject: key, body: keyJob(`"keyName":"a","key\u004eame":"b"`),
			want: jobs.ErrDuplicateField, field: "keyName", jobID: "k-1",
		},
		{
			name:    "environmentList given twice is refused",
			subject: upd,
			body: []byte(strings.Replace(string(exampleBody(tb, upd)),
				`"environmentList"`, `"environmentList": ["qa"], "environmentList"`, 1)),
			want: jobs.ErrDuplicateField, field: "environmentList", jobID: exampleJob(tb, upd).ID(),
		},
		{
			name:    "a repeated name inside an unknown field's value is refused as the unknown field",
			subject: cred, body: []byte(`{"jobId":"j-1","projectName":"p","username":"u","x":{"a":1,"a":2}}`),
			want: jobs.ErrUnknownField, field: "x", jobID: "j-1",
		},
		{
			name:    "an unknown field before jobId still lets the result carry the id",
			subject: cred, body: []byte(`{"zz":1,"projectName":"p","username":"u","jobId":"late-id"}`),
			want: jobs.ErrUnknownField, field: "zz", jobID: "late-id",
		},
		{
			name:    "a JOBID member is refused and never taken for the job's id",
			subject: cred, msgID: "msg-1", body: []byte(`{"JOBID":"other-job","projectName":"p","username":"u"}`),
			want: jobs.ErrUnknownField, field: "JOBID", jobID: "msg-1",
		},
		{
			name:    "a jobId given twice is refused and neither copy is taken for the id",
			subject: cred, body: []byte(`{"jobId":"a","projectName":"p","username":"u","jobId":"b"}`),
			want: jobs.ErrDuplicateField, field: "jobId",
		},
		{
			name:    "a jobId given twice falls back to Nats-Msg-Id for the id",
			subject: cred, msgID: "msg-1", body: []byte(`{"jobId":"a","jobId":"a","projectName":"p","username":"u"}`),
			want: jobs.ErrDuplicateField, field: "jobId", jobID: "msg-1",
		},
		{
			name:    "an unknown field is reported before a field of the wrong type",
			subject: upd, body: []byte(`{"jobId":"j-1","environmentList":"prod","aliass":"a"}`),
			want: jobs.ErrUnknownField, field: "aliass", jobID: "j-1",
		},
		{
			name:    "a string escape that is not Unicode (a lone surrogate) is malformed",
			subject: cred, body: []byte(`{"jobId":"j","projectName":"p","username":"\ud800"}`),
			want: jobs.ErrMalformed, jobID: "j",
		},
	}
}

func TestStrictDecodingMessagesNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, want string }{
		{
			"a misspelled field is named",
			`{"jobId":"k-1","projectName":"p","keyName":"k","jwkDeleteActoin":"DELETE"}`,
			`jobs: decode "apiops.key.delete" job "k-1": jwkDeleteActoin: unknown field`,
		},
		{
			"a field in another letter case is named with its right spelling",
			`{"jobId":"k-1","projectName":"p","keyName":"a","KEYNAME":"b"}`,
			`jobs: decode "apiops.key.delete" job "k-1": KEYNAME: unknown field: must be spelled "keyName"`,
		},
		{
			"a repeated field is named",
			`{"jobId":"k-1","projectName":"p","keyName":"a","keyName":"b"}`,
			`jobs: decode "apiops.key.delete" job "k-1": keyName: duplicate field`,
		},
		{
			"an unknown name that is not a plain name is quoted",
			`{"jobId":"k-1","projectName":"p","keyName":"a","bad\nname":1}`,
			`jobs: decode "apiops.key.delete" job "k-1": "bad\nname": unknown field`,
		},
		{
			"a long unknown name is quoted and cut to 64 bytes",
			`{"jobId":"k-1","projectName":"p","keyName":"a","` + strings.Repeat("n", 100) + `":1}`,
			`jobs: decode "apiops.key.delete" job "k-1": "` + strings.Repeat("n", 64) + `"...: unknown field`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := mustDecodeError(t, jobs.SubjectKeyDelete, "", []byte(tc.body))
			if got := err.Error(); got != tc.want {
				t.Errorf("Error() = %s\nwant      %s", got, tc.want)
			}
			var de *jobs.DecodeError
			if !errors.As(err, &de) || de.Code() != "invalid_job" {
				t.Errorf("Decode error %v: want a *DecodeError with code invalid_job", err)
			}
		})
	}
}

// TestStrictDecodingAcceptsEscapedNames checks that a name is compared after
// its escapes are decoded, as encoding/json does: "\u006beyName" is keyName.
func TestStrictDecodingAcceptsEscapedNames(t *testing.T) {
	t.Parallel()
	body := []byte(`{"jobId":"k-1","projectName":"p","\u006beyName":"my-key"}`)
	job, err := jobs.Decode(jobs.SubjectKeyDelete, nil, body)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got := job.Resource().Name; got != "my-key" {
		t.Errorf("keyName = %q, want my-key", got)
	}
}
