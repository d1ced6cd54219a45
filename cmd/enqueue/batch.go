package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// entry is one job of a batch file, not yet decoded, and where it is: "line
// 3" in NDJSON, "[2]" in a JSON array, "line 3 [2]" in an array on line 3
// of a longer file.
type entry struct {
	raw json.RawMessage
	at  string
}

// splitBatch cuts a batch file into its jobs. A file is one of:
//
//   - one JSON value: a job, or an array of jobs named by their index;
//   - NDJSON: a job or an array of jobs per line, named by the line; each
//     line is read on its own, so a malformed line hides none after it;
//   - JSON values spread over lines, one after another, named by the line
//     each starts on. A syntax error ends the reading there: where the next
//     value starts is then unknown.
func splitBatch(data []byte) ([]entry, []error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, nil
	case json.Valid(trimmed):
		if trimmed[0] == '[' {
			return splitArray(trimmed, "")
		}
		return []entry{{trimmed, fmt.Sprintf("line %d", lineOf(data, int64(bytes.Index(data, trimmed))))}}, nil
	case lineOriented(data):
		return splitLines(data)
	default:
		return splitStream(data)
	}
}

// lineOriented tells NDJSON from JSON spread over lines: its first line is
// a whole JSON value, or every line starts one.
func lineOriented(data []byte) bool {
	first, every := true, true
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if first && json.Valid(line) {
			return true
		}
		first = false
		every = every && (line[0] == '{' || line[0] == '[')
	}
	return every
}

// splitLines reads NDJSON: every line on its own.
func splitLines(data []byte) (out []entry, errs []error) {
	n := 0
	for line := range bytes.Lines(data) {
		n++
		line = bytes.TrimSpace(line)
		at := fmt.Sprintf("line %d", n)
		switch {
		case len(line) == 0:
		case !json.Valid(line):
			errs = append(errs, fmt.Errorf("%s: malformed JSON: %v", at, syntaxError(line)))
		case line[0] == '[':
			e, err := splitArray(line, at+" ")
			out, errs = append(out, e...), append(errs, err...)
		default:
			out = append(out, entry{line, at})
		}
	}
	return out, errs
}

// splitStream reads JSON values one after another, wherever lines break.
func splitStream(data []byte) (out []entry, errs []error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	// lineAt counts lines only from where it counted last: offsets only
	// grow, and a count from the start for every job would make a large
	// file quadratic.
	var counted int64
	line := 1
	lineAt := func(offset int64) int {
		offset = min(offset, int64(len(data)))
		line += bytes.Count(data[counted:offset], []byte("\n"))
		counted = offset
		return line
	}
	for {
		offset := skipSpace(data, dec.InputOffset())
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return out, errs
		}
		if err != nil {
			// The error's offset counts from the start of the input.
			if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
				offset = se.Offset
			}
			return out, append(errs, fmt.Errorf("line %d: malformed JSON: %v", lineAt(offset), err))
		}
		at := fmt.Sprintf("line %d", lineAt(offset))
		if raw[0] == '[' {
			e, err := splitArray(raw, at+" ")
			out, errs = append(out, e...), append(errs, err...)
			continue
		}
		out = append(out, entry{raw, at})
	}
}

// splitArray names the elements of a valid JSON array by index, after
// prefix.
func splitArray(raw []byte, prefix string) ([]entry, []error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, []error{fmt.Errorf("%s%v", prefix, err)}
	}
	out := make([]entry, len(items))
	for i, item := range items {
		out[i] = entry{item, fmt.Sprintf("%s[%d]", prefix, i)}
	}
	return out, nil
}

// syntaxError is encoding/json's complaint about invalid JSON.
func syntaxError(b []byte) error {
	var v json.RawMessage
	return json.Unmarshal(b, &v)
}

// lineOf is the 1-based line of data holding offset.
func lineOf(data []byte, offset int64) int {
	return 1 + bytes.Count(data[:min(offset, int64(len(data)))], []byte("\n"))
}

// skipSpace returns the offset of the first non-space byte at or after off,
// where the next JSON value begins.
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) && (data[off] == ' ' || data[off] == '\n' || data[off] == '\r' || data[off] == '\t') {
		off++
	}
	return off
}

// batchOptions are the flags of publish that shape its jobs.
type batchOptions struct {
	// subject is for jobs with no "subject" member.
	subject string
	scoped  bool
	// newIDs replaces every job's id by a generated one (--force-new-id).
	newIDs bool
}

// readJobs reads a batch file and decodes every job, giving each its wire
// subject. Every bad job is reported, each where it is; then nothing is
// returned. A job repeated under the same id is published once, with a note.
func readJobs(in io.Reader, opt batchOptions) (list []outgoing, notes []string, err error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, nil, fmt.Errorf("publish: read: %w", err)
	}
	entries, errs := splitBatch(data)
	seen := make(map[string]int) // job id → index in list
	for _, e := range entries {
		o, err := decodeEntry(e, opt)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.at, err))
			continue
		}
		if !opt.newIDs {
			if i, ok := seen[o.job.ID()]; ok {
				first := list[i]
				if !sameBody(first, o) {
					errs = append(errs, fmt.Errorf("%s: job id %q is also the id of %s, a different job (%s); give each job its own id",
						e.at, o.job.ID(), first.at, describeJob(first.job)))
				} else {
					notes = append(notes, fmt.Sprintf("%s: the same job as %s (id %q): published once", e.at, first.at, o.job.ID()))
				}
				continue
			}
			seen[o.job.ID()] = len(list)
		}
		list = append(list, o)
	}
	if len(errs) > 0 {
		msg := fmt.Sprintf("publish: nothing published, %d invalid job(s):", len(errs))
		for _, err := range errs {
			if errors.Is(err, jobs.ErrUnknownSubject) {
				errs = append(errs, errors.New(validSubjects()))
				break
			}
		}
		return nil, nil, fmt.Errorf("%s\n%w", msg, errors.Join(errs...))
	}
	if len(list) == 0 {
		return nil, nil, errors.New("publish: no jobs in input")
	}
	return list, notes, nil
}

// decodeEntry decodes one job of a batch, held to the worker's rules.
func decodeEntry(e entry, opt batchOptions) (outgoing, error) {
	s, body, err := splitSubject(e.raw)
	if err != nil {
		return outgoing{}, err
	}
	if s == "" {
		s = opt.subject
	}
	if s == "" {
		return outgoing{}, errors.New("no subject (give the job a \"subject\" field or use --subject)")
	}
	job, err := jobs.Decode(s, nil, body)
	if opt.newIDs && (err == nil || missingID(err)) {
		job, err = withNewID(s, body)
	}
	if err != nil {
		return outgoing{}, err
	}
	wire, err := wireSubject(s, job, opt.scoped)
	if err != nil {
		return outgoing{}, err
	}
	return outgoing{job: job, subject: wire, at: e.at, givenID: !opt.newIDs}, nil
}

// withNewID decodes a job's body under a generated id: without its jobId,
// whose place the Nats-Msg-Id header takes. The id names the job's
// resource, known once the body is decoded.
func withNewID(subject string, body []byte) (jobs.Job, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, err
	}
	delete(members, "jobId")
	body, err := json.Marshal(members)
	if err != nil {
		return nil, err
	}
	bare, _, _ := jobs.ParseSubject(subject)
	header := nats.Header{}
	header.Set(nats.MsgIdHdr, newJobID(bare, "new"))
	job, err := jobs.Decode(subject, header, body)
	if err != nil {
		return nil, err
	}
	header.Set(nats.MsgIdHdr, newJobID(bare, job.Resource().Name))
	return jobs.Decode(subject, header, body)
}

// missingID reports whether a job was refused for having no id: with
// --force-new-id it gets one, and any other rule it breaks is reported then.
func missingID(err error) bool {
	var fe *jobs.FieldError
	return errors.As(err, &fe) && fe.Field == "jobId" && errors.Is(fe, jobs.ErrRequired)
}

// sameBody reports whether two jobs of a batch are one: the same subject
// and the same body.
func sameBody(a, b outgoing) bool {
	ba, errA := jobs.Marshal(a.job)
	bb, errB := jobs.Marshal(b.job)
	return errA == nil && errB == nil && a.job.Subject() == b.job.Subject() && bytes.Equal(ba, bb)
}

// validSubjects names the job subjects, for an unknown one.
func validSubjects() string {
	return "valid subjects: " + strings.Join(jobs.Subjects, ", ") + " (or any of them with .<project> appended, the scoped form)"
}
