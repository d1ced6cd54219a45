package jobs

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// nestedJob has the shapes later job types bring (a list of objects, as
// key.create's cryptoKeyInfoEnvironmentList), so that checkNames is tested
// below the top level too.
type nestedJob struct {
	JobID   string `json:"jobId"`
	Entries []struct {
		EnvironmentName string `json:"environmentName"`
		Alias           string `json:"alias,omitempty"`
	} `json:"entries"`
	Owner *struct {
		Name string `json:"name"`
	} `json:"owner"`
	CertificateFields
	At       time.Time `json:"at"`
	Skipped  string    `json:"-"`
	Untagged string
	hidden   string
}

func TestMembersOfFollowsEncodingJSON(t *testing.T) {
	t.Parallel()
	_ = nestedJob{}.hidden
	want := members{
		"jobId":                  nil,
		"entries":                {"environmentName": nil, "alias": nil},
		"owner":                  {"name": nil},
		"alias":                  nil,
		"certificateDescription": nil,
		"environmentList":        nil,
		"pemEncodedFile":         nil,
		"at":                     nil,
		"Untagged":               nil,
	}
	if diff := cmp.Diff(want, membersOf(reflect.TypeFor[nestedJob]())); diff != "" {
		t.Errorf("membersOf (-want +got):\n%s", diff)
	}
}

func TestCheckNamesBelowTheTopLevel(t *testing.T) {
	t.Parallel()
	known := membersOf(reflect.TypeFor[nestedJob]())
	tests := []struct {
		name   string
		body   string
		want   error
		field  string
		detail string
	}{
		{
			name: "exact names at every level pass",
			body: `{"jobId":"j","entries":[{"environmentName":"prod","alias":"a"},{"environmentName":"qa"}],"owner":{"name":"n"},"at":"2026-11-23T00:00:00Z"}`,
		},
		{
			name: "a misspelled name in a list element is refused with its path",
			body: `{"jobId":"j","entries":[{"environmentName":"prod"},{"environmentNmae":"qa"}]}`,
			want: ErrUnknownField, field: "entries/1/environmentNmae",
		},
		{
			name: "a name in another case in a nested object is refused with its spelling",
			body: `{"jobId":"j","owner":{"NAME":"n"}}`,
			want: ErrUnknownField, field: "owner/NAME", detail: `must be spelled "name"`,
		},
		{
			name: "a name given twice in a list element is refused with its path",
			body: `{"jobId":"j","entries":[{"environmentName":"prod","environmentName":"qa"}]}`,
			want: ErrDuplicateField, field: "entries/0/environmentName",
		},
		{
			name: "a name given twice inside a value that is not checked is still refused",
			body: `{"jobId":"j","at":{"a":1,"a":2}}`,
			want: ErrDuplicateField, field: "at/a",
		},
		{
			name: "a field tagged - is unknown",
			body: `{"jobId":"j","Skipped":"x"}`,
			want: ErrUnknownField, field: "Skipped",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := checkNames([]byte(tc.body), known)
			if id != "j" {
				t.Errorf("jobId = %q, want j", id)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkNames: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, tc.want) {
				t.Fatalf("checkNames = %v, want a *FieldError matching %v", err, tc.want)
			}
			if fe.Field != tc.field || fe.Detail != tc.detail {
				t.Errorf("field %q detail %q, want %q %q", fe.Field, fe.Detail, tc.field, tc.detail)
			}
		})
	}
}
