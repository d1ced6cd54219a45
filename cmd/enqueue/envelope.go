package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// subjectField is the one member a batch file may add to a job: the subject
// to publish it on. It is not part of the job, so it is taken out before the
// job goes through jobs.Decode, which refuses every name it does not know.
const subjectField = "subject"

// splitSubject takes the top-level "subject" member out of a job object and
// returns its value and the object without it. The name is matched exactly
// and may appear once; any other name, repeated or not, is left for
// jobs.Decode to judge, so that a batch file is held to the worker's rules
// and reported in its words. A value that is not an object is returned as it
// is, for jobs.Decode to call malformed.
func splitSubject(raw []byte) (subject string, job []byte, err error) {
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true))
	if dec.PeekKind() != '{' {
		return "", raw, nil
	}
	var out bytes.Buffer
	enc := jsontext.NewEncoder(&out, jsontext.AllowDuplicateNames(true))
	found := false
	err = copyToken(dec, enc) // '{'
	for err == nil && dec.PeekKind() != '}' {
		var name jsontext.Token
		if name, err = dec.ReadToken(); err != nil {
			break
		}
		switch n := name.String(); {
		case n == subjectField && found:
			return "", nil, fmt.Errorf("%s: duplicate field", subjectField)
		case n == subjectField:
			found = true
			var v jsontext.Token
			if dec.PeekKind() != '"' {
				return "", nil, fmt.Errorf("%s: must be a string", subjectField)
			}
			if v, err = dec.ReadToken(); err == nil {
				subject = v.String()
			}
		case strings.EqualFold(n, subjectField):
			return "", nil, fmt.Errorf("%q: unknown field: must be spelled %q", n, subjectField)
		default:
			var v jsontext.Value
			if err = enc.WriteToken(name); err == nil {
				if v, err = dec.ReadValue(); err == nil {
					err = enc.WriteValue(v)
				}
			}
		}
	}
	if err == nil {
		err = copyToken(dec, enc) // '}'
	}
	if err != nil {
		return "", nil, fmt.Errorf("malformed JSON: %w", err)
	}
	return subject, bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

func copyToken(dec *jsontext.Decoder, enc *jsontext.Encoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	return enc.WriteToken(tok)
}
