package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		subject string
		job     string
		err     string
	}{
		{
			name:    "the subject is taken out and the rest kept in order",
			raw:     `{"jobId":"j","subject":"apiops.key.delete","projectName":"P","keyName":"k"}`,
			subject: "apiops.key.delete", job: `{"jobId":"j","projectName":"P","keyName":"k"}`,
		},
		{
			name: "a job without a subject is kept as it is",
			raw:  `{"jobId":"j","projectName":"P"}`, job: `{"jobId":"j","projectName":"P"}`,
		},
		{
			name: "repeated job fields are left for jobs.Decode to refuse",
			raw:  `{"subject":"s","keyName":"a","keyName":"b"}`, subject: "s", job: `{"keyName":"a","keyName":"b"}`,
		},
		{
			name: "a value that is not an object is left for jobs.Decode to refuse",
			raw:  `42`, job: `42`,
		},
		{name: "a repeated subject is refused", raw: `{"subject":"a","subject":"b"}`, err: "subject: duplicate field"},
		{name: "a subject in another letter case is refused", raw: `{"Subject":"a"}`, err: `"Subject": unknown field: must be spelled "subject"`},
		{name: "a subject that is not a string is refused", raw: `{"subject":1}`, err: "subject: must be a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			subject, job, err := splitSubject([]byte(tc.raw))
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff([]string{tc.subject, tc.job, tc.err}, []string{subject, string(job), gotErr}); diff != "" {
				t.Errorf("splitSubject(%s) (-want +got):\n%s", tc.raw, diff)
			}
		})
	}
}
