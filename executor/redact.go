package executor

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// redacted replaces a secret wherever an answer echoes it. It is plain
// ASCII, so a JSON body stays JSON after the replacement.
const redacted = "REDACTED"

// minSecretLen is the shortest value taken out of answers: a shorter one
// cannot be told from ordinary text, and replacing it would garble every
// message while protecting nothing.
const minSecretLen = 6

// redactor takes the secrets of one attempt (the token it sent and, with
// client credentials, the client secret) out of everything an answer can put
// into a result, an error, a ledger record, a log line or a metric label.
type redactor []string

func newRedactor(secrets ...string) redactor {
	r := make(redactor, 0, len(secrets))
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			r = append(r, s)
		}
	}
	return r
}

// body returns b with every secret replaced, whether written as it is or
// with JSON string escapes (`\/`, `\u0041`, `\"`, …), so that neither the
// strings decoded from b nor an excerpt of it hold one. b is not modified.
func (r redactor) body(b []byte) []byte {
	for _, s := range r {
		if bytes.Contains(b, []byte(s)) {
			b = bytes.ReplaceAll(b, []byte(s), []byte(redacted))
		}
		if bytes.IndexByte(b, '\\') >= 0 {
			b = replaceEscaped(b, s)
		}
	}
	return b
}

// text returns s with every secret replaced: the last line of defence, for
// strings that sanitize turned into a secret (an invalid byte or a control
// character taken out of the middle of one).
func (r redactor) text(s string) string {
	for _, secret := range r {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	return s
}

// response redacts every string of a parsed answer. Deployment is a fresh
// value of parseResponse's, so it is changed in place.
func (r redactor) response(resp *Response) {
	d := resp.Deployment
	if len(r) == 0 || d == nil {
		return
	}
	d.Message = r.text(d.Message)
	for i := range d.EnvironmentResults {
		e := &d.EnvironmentResults[i]
		e.EnvironmentName, e.Message = r.text(e.EnvironmentName), r.text(e.Message)
		for j := range e.Pods {
			p := &e.Pods[j]
			p.PodName, p.PodIP, p.Detail = r.text(p.PodName), r.text(p.PodIP), r.text(p.Detail)
		}
	}
}

// apiError redacts an error parsed from an answer.
func (r redactor) apiError(e *APIError) {
	e.Code, e.Message = r.text(e.Code), r.text(e.Message)
}

// replaceEscaped replaces every occurrence of secret in b that is written
// with at least one JSON string escape. It decodes the escapes of all of b
// (outside strings too: any text that reads as the secret is taken out),
// finds the secret in the decoded text and replaces the escapes that made it.
func replaceEscaped(b []byte, secret string) []byte {
	text, at := unescape(b)
	if !bytes.Contains(text, []byte(secret)) {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b))
	done := 0 // b[:done] is written
	for i := 0; ; {
		k := bytes.Index(text[i:], []byte(secret))
		if k < 0 {
			break
		}
		start, endText := int(at[i+k]), i+k+len(secret)
		if start < done {
			// It begins inside the escape that ended the last match.
			i += k + 1
			continue
		}
		end := len(b)
		// The match ends at the start of the next escape or byte, past any
		// escape whose decoded bytes the match only partly covers.
		for j := endText; j < len(text); j++ {
			if at[j] != at[endText-1] {
				end = int(at[j])
				break
			}
		}
		out.Write(b[done:start])
		out.WriteString(redacted)
		done, i = end, endText
	}
	out.Write(b[done:])
	return out.Bytes()
}

// unescape decodes every JSON string escape in b, leaving other bytes as
// they are, and returns the text with, for each of its bytes, the offset in
// b of the escape or byte it came from. A backslash that starts no valid
// escape stands for itself.
func unescape(b []byte) (text []byte, at []int32) {
	text, at = make([]byte, 0, len(b)), make([]int32, 0, len(b))
	emit := func(from int, p ...byte) {
		for _, c := range p {
			text, at = append(text, c), append(at, int32(from))
		}
	}
	for i := 0; i < len(b); {
		r, n := escape(b[i:])
		if n == 0 {
			emit(i, b[i])
			i++
			continue
		}
		emit(i, utf8.AppendRune(nil, r)...)
		i += n
	}
	return text, at
}

// escape decodes the JSON escape at the start of b and returns its rune and
// length, or n == 0 when b does not start with one. A surrogate pair written
// as two \u escapes is one rune.
func escape(b []byte) (r rune, n int) {
	if len(b) < 2 || b[0] != '\\' {
		return 0, 0
	}
	switch c := b[1]; c {
	case '"', '\\', '/':
		return rune(c), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, 0
		}
		if utf16.IsSurrogate(r) && len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
			if r2, ok := hex4(b[8:]); ok {
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					return pair, 12
				}
			}
		}
		return r, 6
	}
	return 0, 0
}

// hex4 reads four hexadecimal digits, in either case.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}
