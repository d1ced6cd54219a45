package jobs

import (
	"encoding/json"
	"strconv"
	"strings"
)

// HoldsClearSecret reports whether body, a message on a key subject (bare
// or scoped), carries key material in clear that must only travel
// encrypted: a content member on a SECRET_KEY or PRIVATE_KEY entry (or on
// an entry of a key whose type is missing or unknown), or a private key in
// any content. It reads the body loosely, whatever else is wrong with it,
// so that a job refused for another reason is still recognised: the worker
// must then not copy the body anywhere (dead letters keep only encrypted
// material). It also returns the field at fault.
func HoldsClearSecret(subject string, body []byte) (field string, ok bool) {
	bare, _, known := ParseSubject(subject)
	if !known || (bare != SubjectKeyCreate && bare != SubjectKeyUpdate) {
		return "", false
	}
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return "", false
	}
	keyType, _ := member(m, "keyType").(string)
	list, _ := member(m, "cryptoKeyInfoEnvironmentList").([]any)
	for i, e := range list {
		entry, _ := e.(map[string]any)
		content, _ := member(entry, "content").(string)
		if content == "" {
			continue
		}
		if KeyType(keyType) != KeyPublic || holdsPrivateKey(content) {
			return "cryptoKeyInfoEnvironmentList/" + strconv.Itoa(i) + "/content", true
		}
	}
	return "", false
}

// member is m's member name in any letter case, as encoding/json would
// match it.
func member(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// checkClearBody refuses secret material in clear, before any other rule.
func checkClearBody(subject string, body []byte) error {
	field, ok := HoldsClearSecret(subject, body)
	if !ok {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	what, _ := member(m, "keyType").(string)
	switch KeyType(what) {
	case KeySecret, KeyPrivate:
		what += " material"
	case KeyPublic:
		what = "a private key"
	default:
		what = "key material of no known type"
	}
	return &FieldError{Field: field, Err: ErrSecretInClear, Detail: clearDetail(what)}
}
