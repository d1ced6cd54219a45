package tracecontext_test

import (
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/tracecontext"
)

func TestParse(t *testing.T) {
	t.Parallel()
	const (
		valid   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	tests := []struct {
		name   string
		in     string
		want   string
		wantOK bool
	}{
		{"the specification's example is passed on as it is", valid, valid, true},
		{"an unsampled header is passed on", "00-" + traceID + "-" + spanID + "-00", "00-" + traceID + "-" + spanID + "-00", true},
		{"a later version is passed on as version 00", "01-" + traceID + "-" + spanID + "-01", "00-" + traceID + "-" + spanID + "-01", true},
		{"a later version's extra fields are dropped", "cc-" + traceID + "-" + spanID + "-01-what-the-future-will-bring", "00-" + traceID + "-" + spanID + "-01", true},
		{"an empty header is refused", "", "", false},
		{"a header one character short is refused", valid[:54], "", false},
		{"version 00 with extra fields is refused", valid + "-01", "", false},
		{"version ff is refused", "ff" + valid[2:], "", false},
		{"an upper-case hex digit is refused", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", false},
		{"a non-hex version is refused", "0x" + valid[2:], "", false},
		{"an all-zero trace id is refused", "00-" + strings.Repeat("0", 32) + "-" + spanID + "-01", "", false},
		{"an all-zero parent id is refused", "00-" + traceID + "-" + strings.Repeat("0", 16) + "-01", "", false},
		{"a short trace id is refused", "00-" + traceID[1:] + "-" + spanID + "-01-", "", false},
		{"non-hex flags are refused", "00-" + traceID + "-" + spanID + "-0g", "", false},
		{"a wrong separator is refused", "00_" + traceID + "-" + spanID + "-01", "", false},
		{"a control character in version 00 is refused", valid[:54] + "\n", "", false},
		{"a control character in a later version's fields is refused", "01-" + traceID + "-" + spanID + "-01-x\r\nInjected: yes", "", false},
		{"a later version without a dash after the flags is refused", "01-" + traceID + "-" + spanID + "-01x", "", false},
		{"a later version of 5000 bytes is refused", "01-" + traceID + "-" + spanID + "-01-" + strings.Repeat("a", 5000-56), "", false},
		{"a later version of MaxLen bytes is passed on", "01-" + traceID + "-" + spanID + "-01-" + strings.Repeat("a", tracecontext.MaxLen-56), "00-" + traceID + "-" + spanID + "-01", true},
		{"non-ASCII text is refused", "00-" + traceID + "-" + spanID + "-é", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tracecontext.Parse(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Parse(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
