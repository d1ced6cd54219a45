package jobs

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// members maps each JSON name a struct type decodes to the members of the
// objects its value holds: nil when the value is not an object or an array
// of objects.
type members map[string]members

// schemas caches membersOf for each job type.
var schemas sync.Map // reflect.Type -> members

// schemaOf returns the members of the struct job points to.
func schemaOf(job Job) members {
	t := reflect.TypeOf(job).Elem()
	if m, ok := schemas.Load(t); ok {
		return m.(members)
	}
	m := membersOf(t)
	schemas.Store(t, m)
	return m
}

// membersOf lists the JSON names encoding/json decodes into struct type t,
// looking through embedded structs as it does.
func membersOf(t reflect.Type) members {
	m := members{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" && f.Tag.Get("json") == "-":
			continue
		case f.Anonymous && name == "" && derefType(f.Type).Kind() == reflect.Struct:
			maps.Copy(m, membersOf(derefType(f.Type)))
			continue
		case !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		m[name] = objectMembers(f.Type)
	}
	return m
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// objectMembers returns the members of the objects a value of type t holds,
// directly or as array elements, or nil if it holds none whose names
// encoding/json matches against struct fields.
func objectMembers(t reflect.Type) members {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	p := reflect.PointerTo(t)
	if t.Kind() != reflect.Struct || p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshaler) {
		return nil
	}
	return membersOf(t)
}

func derefType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

// checkNames refuses the member names encoding/json would have matched
// loosely or dropped: a name the job type does not have, one written in
// another letter case (encoding/json would take it for the field), and one
// given twice in any object (encoding/json keeps the last). A typo in an
// optional field would otherwise change what the job does, silently.
//
// It also returns the body's jobId as read from an exact, single "jobId"
// member before the first problem, so that a refused job's failed result is
// never published under a value from a misspelled or repeated name.
//
// The body must already be known to be valid JSON. jsontext's decoder finds
// repeated names at every depth, including inside values it skips; a string
// escape that is not valid Unicode (a lone surrogate, which encoding/json
// would turn into U+FFFD) is malformed.
func checkNames(body []byte, known members) (jobID string, err error) {
	w := walkers.Get().(*walker)
	defer w.release()
	w.buf = *bytes.NewBuffer(body) // read in place, not copied
	w.dec.Reset(&w.buf)
	if w.dec.PeekKind() != '{' {
		return "", nil // not an object: json.Unmarshal has said why
	}
	err = w.walkObject(known, &jobID)
	switch field := duplicate(err); {
	case err == nil:
		return jobID, nil
	case field != "":
		return jobID, &FieldError{Field: field, Err: ErrDuplicateField}
	case errors.As(err, new(*FieldError)):
		return jobID, err
	default:
		return jobID, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
}

// walker is a reusable decoder: Decode runs for every message, and a fresh
// jsontext.Decoder costs several allocations.
type walker struct {
	dec  jsontext.Decoder
	buf  bytes.Buffer
	name []byte // an unquoted name with escapes
}

var walkers = sync.Pool{New: func() any { return new(walker) }}

// release returns w to the pool without a reference to the body.
func (w *walker) release() {
	w.buf = bytes.Buffer{}
	w.dec.Reset(&w.buf)
	walkers.Put(w)
}

// walkObject reads one object whose names must be among known. At the top
// level (jobID not nil) it records the value of a "jobId" string member. An
// unknown name does not stop the walk, so that a jobId after it is still
// found; the first problem is the one reported.
func (w *walker) walkObject(known members, jobID *string) error {
	dec := &w.dec
	if _, err := dec.ReadToken(); err != nil { // '{'
		return err
	}
	var first error
	for dec.PeekKind() != '}' {
		name, err := w.readName()
		if err != nil {
			if jobID != nil && duplicate(err) == "jobId" {
				*jobID = "" // which one is meant is anybody's guess
			}
			return cmp.Or(first, err)
		}
		sub, ok := known[string(name)] // no allocation for a map lookup
		switch {
		case !ok:
			first = cmp.Or(first, unknownField(fieldAt(dec.StackPointer()), string(name), known))
			err = dec.SkipValue()
		case jobID != nil && string(name) == "jobId" && dec.PeekKind() == '"':
			var tok jsontext.Token
			if tok, err = dec.ReadToken(); err == nil {
				*jobID = tok.String()
			}
		default:
			err = w.walkValue(sub)
		}
		if err != nil {
			return cmp.Or(first, err)
		}
	}
	if first != nil {
		return first
	}
	_, err := dec.ReadToken() // '}'
	return err
}

// readName reads an object member's name, unquoted. The result is valid
// until the next read.
func (w *walker) readName() ([]byte, error) {
	v, err := w.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	w.name, err = jsontext.AppendUnquote(w.name[:0], v)
	return w.name, err
}

// duplicate returns the field a repeated name error is about, or "".
func duplicate(err error) string {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && errors.Is(se.Err, jsontext.ErrDuplicateName) {
		return fieldAt(se.JSONPointer)
	}
	return ""
}

// walkValue reads one value, checking the names of the objects in it when
// known says what they may be.
func (w *walker) walkValue(known members) error {
	dec := &w.dec
	if known == nil {
		return dec.SkipValue()
	}
	switch dec.PeekKind() {
	case '{':
		return w.walkObject(known, nil)
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != ']' {
			if err := w.walkValue(known); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	}
	return dec.SkipValue()
}

// unknownField reports a name that is not among known, with the spelling
// meant when it differs from a known name only in letter case.
func unknownField(field, name string, known members) error {
	for k := range known {
		if strings.EqualFold(k, name) {
			return &FieldError{Field: field, Err: ErrUnknownField, Detail: "must be spelled " + quote(k)}
		}
	}
	return &FieldError{Field: field, Err: ErrUnknownField}
}

// fieldAt names the member a JSON pointer leads to: its name at the top
// level, and its path without the leading "/" below it.
func fieldAt(p jsontext.Pointer) string {
	if strings.Count(string(p), "/") <= 1 {
		return p.LastToken()
	}
	return string(p)[1:]
}
