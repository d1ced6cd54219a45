package jobs

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Bounds on what a result echoes of Apinizer's answers. A result is
// published on NATS and kept in the ledger, where a message is refused above
// 1 MiB, and JSON escaping can make text six times longer: what Apinizer
// says is cut, never trusted to be short.
const (
	// MaxMessageSize is the most bytes a result keeps of one message:
	// Apinizer's deployment, environment and pod messages and the error
	// message.
	MaxMessageSize = 1 << 10
	// MaxResultSize is the most bytes of a result's JSON encoding that
	// Bound lets through: far under NATS's 1 MiB, with room for a ledger
	// record that holds the result.
	MaxResultSize = 64 << 10
)

// CutMark ends a text that Cut shortened.
const CutMark = "…[cut]"

// Cut returns s when it is at most limit bytes; otherwise the longest
// prefix that ends on a UTF-8 character boundary and, followed by CutMark,
// takes at most limit bytes. A limit too small for CutMark gives CutMark.
func Cut(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	n := max(limit-len(CutMark), 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + CutMark
}

// shortMessageSize is what Bound cuts messages to when MaxMessageSize is
// still too much.
const shortMessageSize = 128

// Bound returns r cut down until its JSON encoding takes at most limit
// bytes (MaxResultSize when limit is not positive), so that an oversize
// result is written smaller instead of failing on every delivery. It cuts,
// in this order, until the result fits: every message to MaxMessageSize;
// the pods of each environment; every message to a short excerpt; the
// environments; and last the messages entirely. Lists keep failures before
// successes, in the order Apinizer gave; what was left out is counted in
// the deployment message. The identifying fields (job id, subject, names,
// status, error code) are never changed, so a result whose identifiers
// alone exceed limit is returned as small as it gets. r is not modified.
func Bound(r Result, limit int) Result { return BoundEncoded(r, limit).Result }

// Encoded is a result with its JSON encoding, made once: the worker keeps
// the same bytes in the ledger and publishes them.
type Encoded struct {
	Result Result
	JSON   []byte
}

// Encode returns r with its encoding. A result always encodes: it holds
// only strings, numbers, booleans and times.
func Encode(r Result) Encoded {
	b, _ := json.Marshal(r)
	return Encoded{Result: r, JSON: b}
}

// BoundEncoded is Bound, with the encoding of the result it returns: the
// encoding that measured the result serves for the rest of its way.
func BoundEncoded(r Result, limit int) Encoded {
	if limit <= 0 {
		limit = MaxResultSize
	}
	e := Encode(r)
	if len(e.JSON) <= limit {
		return e
	}
	r = r.clone()
	r.cutMessages(MaxMessageSize)
	if e = Encode(r); len(e.JSON) <= limit {
		return e
	}
	// Lists are cut to leave room for the note that counts what was left
	// out. A list is cut in proportion to how far over the result is (at
	// least by half), so that a huge report takes few encodings.
	d := r.DeploymentResult
	target := limit - noteRoom
	var omittedEnvs, omittedPods int
	steps := []func(over float64) (more bool){
		func(over float64) bool { return d != nil && cutPods(d, over, &omittedPods) },
		func(float64) bool { r.cutMessages(shortMessageSize); return false },
		func(over float64) bool { return d != nil && cutEnvironments(d, over, &omittedEnvs) },
		func(float64) bool { r.cutMessages(len(CutMark)); return false },
	}
	size := len(e.JSON)
cutting:
	for _, step := range steps {
		for more := true; more; {
			more = step(float64(size) / float64(max(target, 1)))
			if size = encodedSize(r); size <= target {
				break cutting
			}
		}
	}
	if d != nil && omittedEnvs+omittedPods > 0 {
		note := fmt.Sprintf(" [%d environment and %d pod results omitted]", omittedEnvs, omittedPods)
		d.Message = Cut(d.Message, MaxMessageSize-len(note)) + note
	}
	return Encode(r)
}

// noteRoom is kept free for Bound's note: its text and two counts.
const noteRoom = 96

// encodedSize is the length of r's JSON encoding.
func encodedSize(r Result) int { return len(Encode(r).JSON) }

// clone copies what Bound changes, so that the caller's result, which may
// share a deployment result with the executor's response, is left alone.
func (r Result) clone() Result {
	if r.Error != nil {
		e := *r.Error
		r.Error = &e
	}
	if r.DeploymentResult != nil {
		d := *r.DeploymentResult
		d.EnvironmentResults = slices.Clone(d.EnvironmentResults)
		for i := range d.EnvironmentResults {
			d.EnvironmentResults[i].Pods = slices.Clone(d.EnvironmentResults[i].Pods)
		}
		r.DeploymentResult = &d
	}
	return r
}

// cutMessages cuts every message of r to limit bytes.
func (r *Result) cutMessages(limit int) {
	if r.Error != nil {
		r.Error.Message = Cut(r.Error.Message, limit)
	}
	for i := range r.Live {
		r.Live[i].SubjectDN = Cut(r.Live[i].SubjectDN, limit)
	}
	d := r.DeploymentResult
	if d == nil {
		return
	}
	d.Message = Cut(d.Message, limit)
	for i := range d.EnvironmentResults {
		e := &d.EnvironmentResults[i]
		e.Message = Cut(e.Message, limit)
		for j := range e.Pods {
			e.Pods[j].Detail = Cut(e.Pods[j].Detail, limit)
		}
	}
}

// cutPods cuts the most pods an environment keeps by the factor over, and
// at least by half, adding the number dropped to omitted; it reports
// whether any pods are left.
func cutPods(d *DeploymentResult, over float64, omitted *int) bool {
	most := 0
	for _, e := range d.EnvironmentResults {
		most = max(most, len(e.Pods))
	}
	keep := shrink(most, over)
	for i := range d.EnvironmentResults {
		e := &d.EnvironmentResults[i]
		if len(e.Pods) <= keep {
			continue
		}
		*omitted += len(e.Pods) - keep
		e.Pods = keepFailuresFirst(e.Pods, keep, func(p PodResult) bool { return !p.Success })
		if len(e.Pods) == 0 {
			e.Pods = nil
		}
	}
	return keep > 0
}

// cutEnvironments cuts the environment results by the factor over, and at
// least by half, adding the number dropped to omitted; it reports whether
// any are left.
func cutEnvironments(d *DeploymentResult, over float64, omitted *int) bool {
	keep := shrink(len(d.EnvironmentResults), over)
	*omitted += len(d.EnvironmentResults) - keep
	d.EnvironmentResults = keepFailuresFirst(d.EnvironmentResults, keep, func(e EnvironmentResult) bool { return !e.Success })
	return keep > 0
}

// shrink is n divided by over, and at most half of n.
func shrink(n int, over float64) int {
	return min(n/2, int(float64(n)/max(over, 1)))
}

// keepFailuresFirst keeps n of xs, failures before successes, in their
// order.
func keepFailuresFirst[T any](xs []T, n int, failed func(T) bool) []T {
	keep := make([]bool, len(xs))
	for pass := range 2 {
		for i, x := range xs {
			if n > 0 && !keep[i] && failed(x) == (pass == 0) {
				keep[i] = true
				n--
			}
		}
	}
	out := make([]T, 0, n)
	for i, x := range xs {
		if keep[i] {
			out = append(out, x)
		}
	}
	return out
}
