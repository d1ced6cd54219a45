// Package tracecontext checks the W3C Trace Context traceparent header
// (https://www.w3.org/TR/trace-context/#traceparent-header) that jobs carry,
// so that only a well-formed one is passed on to Apinizer and into results.
//
// go.opentelemetry.io/otel/propagation parses the header too, but it is built
// to start spans, not to pass a producer's header on: after a later version's
// fields it accepts any bytes, control characters included, with no length
// bound; it hands back a span context to re-encode, not a value to forward;
// and it would make the OpenTelemetry API a dependency of the executor for
// one forty-line check.
package tracecontext

// Header is the header's name.
const Header = "traceparent"

// MaxLen bounds a header of a future version: version 00 is exactly 55
// characters; later versions may append fields, which are not passed on.
const MaxLen = 512

// len00 is the length of a version-00 header:
// "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex.
const len00 = 55

// Parse checks a traceparent value. It returns the value to pass on and
// true when s is well formed: lowercase hex fields of the right lengths, a
// version other than ff, a trace id and a parent id that are not all zero.
// A version-00 header is returned as it is. A later version's header is
// read as the specification asks (its first four fields, then "-" and
// anything printable, at most MaxLen bytes) and returned as the version-00
// header of its fields, the only version this package can vouch for.
func Parse(s string) (string, bool) {
	if len(s) < len00 || len(s) > MaxLen {
		return "", false
	}
	version, traceID, parentID, flags := s[0:2], s[3:35], s[36:52], s[53:55]
	switch {
	case s[2] != '-' || s[35] != '-' || s[52] != '-',
		!hex(version) || version == "ff",
		!hex(traceID) || zero(traceID),
		!hex(parentID) || zero(parentID),
		!hex(flags):
		return "", false
	case version == "00" && len(s) != len00:
		return "", false
	case version == "00":
		return s, true
	case len(s) > len00 && (s[len00] != '-' || !printable(s[len00:])):
		return "", false
	}
	return "00" + s[2:len00], true
}

// hex reports whether s is lowercase hexadecimal.
func hex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// zero reports whether s is all '0'.
func zero(s string) bool {
	for i := range len(s) {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// printable reports whether s is visible ASCII: a header value that no
// HTTP or NATS client refuses and no log line misreads.
func printable(s string) bool {
	for i := range len(s) {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
