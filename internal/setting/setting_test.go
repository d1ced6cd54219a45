package setting_test

import (
	"errors"
	"testing"

	"github.com/apiops-worker/apiops-worker/internal/setting"
)

var errInvalid = errors.New("thing: invalid config")

func TestChecksReportEverySettingOutOfRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		checks func(c *setting.Checks)
		want   []string // the fields reported, in order
	}{
		{"settings in range report nothing", func(c *setting.Checks) {
			c.Want(true, "Concurrency", 16, "1 to 4096")
		}, nil},
		{"one setting out of range is reported by its field", func(c *setting.Checks) {
			c.Want(false, "Concurrency", 0, "1 to 4096")
			c.Want(true, "MaxJobs", 0, "0 or more")
		}, []string{"Concurrency"}},
		{"every setting out of range is reported", func(c *setting.Checks) {
			c.Want(false, "Concurrency", 0, "1 to 4096")
			c.Want(false, "MaxJobs", -1, "0 or more")
		}, []string{"Concurrency", "MaxJobs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := setting.New(errInvalid)
			tc.checks(c)
			err := c.Err()
			if (err == nil) != (len(tc.want) == 0) {
				t.Fatalf("Err() = %v, want errors for %v", err, tc.want)
			}
			if err != nil && !errors.Is(err, errInvalid) {
				t.Errorf("Err() = %v, does not wrap the component's error", err)
			}
			var got []string
			setting.Each(err, func(e error) {
				var se *setting.Error
				if !errors.As(e, &se) {
					t.Errorf("%v is not a *setting.Error", e)
					return
				}
				got = append(got, se.Field)
			})
			if len(got) != len(tc.want) {
				t.Fatalf("fields %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("fields %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestErrorSaysFieldRangeAndValue(t *testing.T) {
	t.Parallel()
	err := &setting.Error{Kind: errInvalid, Field: "Concurrency", Value: 0, Want: "1 to 4096"}
	if got, want := err.Error(), "thing: invalid config: Concurrency must be 1 to 4096, not 0"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
