package dlq

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
)

// RedactedKey replaces each private key cut out of a dead letter's payload.
const RedactedKey = "[key material removed by apiops-worker]"

// privateKeyBlock matches a PEM private key block of any kind (PKCS#8, RSA,
// EC, OpenSSH, encrypted), or one whose END line is missing, to the end of
// the text.
var privateKeyBlock = regexp.MustCompile(`(?is)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`)

// holdsPrivateKey is as broad as the job validation that refuses a private
// key: any mention, in any letter case.
func holdsPrivateKey(s string) bool { return strings.Contains(strings.ToUpper(s), "PRIVATE KEY") }

// cutPrivateKeys returns s with every private key block replaced by
// RedactedKey; a string still mentioning a private key after that (a block
// too broken to match) is replaced whole, as its extent is unknown.
func cutPrivateKeys(s string) string {
	s = privateKeyBlock.ReplaceAllLiteralString(s, RedactedKey)
	if holdsPrivateKey(s) {
		return RedactedKey
	}
	return s
}

// redact cuts secret material out of a job body kept in a dead letter, and
// reports whether it cut anything. A job refused for carrying a private key
// must not keep it for the dead-letter stream's 30 days. A JSON body is
// decoded so that escapes (\n, \u002d) cannot hide a block, and encoded
// again only if something was cut; any other body is searched as it is.
func redact(payload string) (string, bool) {
	if !holdsPrivateKey(payload) && !strings.Contains(payload, `\u`) {
		return payload, false
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		if !holdsPrivateKey(payload) {
			return payload, false
		}
		return cutPrivateKeys(payload), true
	}
	v, cut := redactValue(v)
	if !cut {
		return payload, false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", true // cannot happen for decoded JSON; keep nothing rather than the key
	}
	return strings.TrimSuffix(buf.String(), "\n"), true
}

// redactValue walks a decoded JSON value, cutting private keys out of its
// strings (member names included).
func redactValue(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		if !holdsPrivateKey(x) {
			return x, false
		}
		return cutPrivateKeys(x), true
	case []any:
		cut := false
		for i, e := range x {
			var c bool
			x[i], c = redactValue(e)
			cut = cut || c
		}
		return x, cut
	case map[string]any:
		cut := false
		for k, e := range x {
			e, c := redactValue(e)
			if holdsPrivateKey(k) {
				delete(x, k)
				k, c = cutPrivateKeys(k), true
			}
			x[k] = e
			cut = cut || c
		}
		return x, cut
	}
	return v, false
}
