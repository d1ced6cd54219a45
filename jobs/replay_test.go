package jobs_test

import (
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestParseReplayOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		wantOK   bool
	}{
		{"a job id is accepted", "rotate-2026-11-23-my-certificate", true},
		{"a job id of MaxIDSize bytes is accepted", strings.Repeat("j", jobs.MaxIDSize), true},
		{"an empty value is refused", "", false},
		{"a 60 KB value is refused", strings.Repeat("j", 60_000), false},
		{"a value one byte over MaxIDSize is refused", strings.Repeat("j", jobs.MaxIDSize+1), false},
		{"a newline is refused", "job\nInjected: yes", false},
		{"white space is refused", "job one", false},
		{"invalid UTF-8 is refused", "job\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := jobs.ParseReplayOf(tt.in)
			want := ""
			if tt.wantOK {
				want = tt.in
			}
			if got != want || ok != tt.wantOK {
				t.Errorf("ParseReplayOf(%.40q) = %.40q, %v; want %.40q, %v", tt.in, got, ok, want, tt.wantOK)
			}
		})
	}
}
