package apinizertest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault is a scripted misbehaviour for the requests it matches. A fault
// either only delays or alters the answer (Delay, HoldAnswer, Message, after
// which the request is answered by the simulator) or ends the request in
// one way: Reply, Hang, Drop or LoseAnswer, after the optional Delay.
type Fault struct {
	// Method and PathPrefix (of the escaped path) select requests; empty
	// matches any. Match, if set, must also accept the request; it runs
	// while the simulator is locked and must not call back into it.
	Method     string
	PathPrefix string
	Match      func(*http.Request) bool
	// Times is the number of matching requests the fault applies to; 0
	// applies it to every one until ClearFaults.
	Times int

	// Delay holds the request before anything else happens.
	Delay time.Duration
	// HoldAnswer holds the answer after the change is applied, as a server
	// that does its work and then is slow to reply. A client that gives up
	// meanwhile leaves the change made without knowing it: the case an
	// at-most-once client has to survive.
	HoldAnswer time.Duration
	// Reply answers with a canned response instead of Apinizer's.
	Reply *Reply
	// Hang holds the request without answering until the client gives up.
	Hang bool
	// Drop closes the connection without answering.
	Drop bool
	// LoseAnswer applies the change (if the request is one Apinizer would
	// accept) and then closes the connection without answering: the lost
	// answer a retry has to end as the truth.
	LoseAnswer bool
	// Message lets the request through as usual (the change is applied if
	// Apinizer would accept it) and puts this text in its answer: as the
	// deployment message of a success, as the error message of a refusal.
	// It is for an Apinizer that echoes a huge or hostile text.
	Message string
}

// Reply is a canned response.
type Reply struct {
	Status int
	// RetryAfter, if set, is sent as the Retry-After header verbatim:
	// delta-seconds or an HTTP-date.
	RetryAfter string
	// ContentType defaults to application/json when Body is not empty.
	ContentType string
	// Body is sent as is; empty sends no body.
	Body string
}

// ErrorReply is an Apinizer error in the reference pages' style:
// {"error": code, "error_description": description}.
func ErrorReply(status int, code, description string) *Reply {
	b, _ := json.Marshal(classicError{Error: code, ErrorDescription: description})
	return &Reply{Status: status, Body: string(b)}
}

// FailureReply is an Apinizer error in the later style:
// {"status": "FAILURE", "resultMessage": message}.
func FailureReply(status int, message string) *Reply {
	b, _ := json.Marshal(podsError{Status: "FAILURE", ResultMessage: message})
	return &Reply{Status: status, Body: string(b)}
}

// HTMLReply is the HTML error page a reverse proxy in front of Apinizer
// sends, for example on 502 or 504.
func HTMLReply(status int) *Reply {
	text := http.StatusText(status)
	return &Reply{
		Status:      status,
		ContentType: "text/html",
		Body: "<html>\r\n<head><title>" + strconv.Itoa(status) + " " + text + "</title></head>\r\n<body>\r\n" +
			"<center><h1>" + strconv.Itoa(status) + " " + text + "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
	}
}

func (r *Reply) write(w http.ResponseWriter) int {
	if r.RetryAfter != "" {
		w.Header().Set("Retry-After", r.RetryAfter)
	}
	switch {
	case r.ContentType != "":
		w.Header().Set("Content-Type", r.ContentType)
	case r.Body != "":
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(r.Status)
	_, _ = w.Write([]byte(r.Body))
	return r.Status
}

// activeFault is a Fault with its remaining count.
type activeFault struct {
	Fault
	left int // remaining applications; -1 for unlimited
}

func (f *activeFault) matches(r *http.Request) bool {
	return f.left != 0 &&
		(f.Method == "" || f.Method == r.Method) &&
		strings.HasPrefix(r.URL.EscapedPath(), f.PathPrefix) &&
		(f.Match == nil || f.Match(r))
}

// AddFault appends f to the faults, which are consulted in the order they
// were added. It panics if f does more than one of Reply, Hang, Drop and
// LoseAnswer, or nothing at all: that is a mistake in the test.
func (s *Simulator) AddFault(f Fault) {
	ends := 0
	for _, b := range []bool{f.Reply != nil, f.Hang, f.Drop, f.LoseAnswer} {
		if b {
			ends++
		}
	}
	alters := f.HoldAnswer > 0 || f.Message != ""
	if ends > 1 || (ends == 0 && f.Delay <= 0 && !alters) || (ends == 1 && alters) {
		panic("apinizertest: a Fault must Delay, HoldAnswer or set a Message, or end the request with exactly one of Reply, Hang, Drop and LoseAnswer")
	}
	left := f.Times
	if left <= 0 {
		left = -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &activeFault{Fault: f, left: left})
}

// ClearFaults removes every fault, including unlimited ones. Environments
// failed with FailEnvironment stay failed.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// outcome is what the faults decided for one request.
type outcome struct {
	delay      time.Duration
	holdAnswer time.Duration
	reply      *Reply
	hang, drop bool
	loseAnswer bool
	message    string
}

// takeFault consumes the faults that apply to r: every matching delay-only
// fault before the first matching fault that ends the request, and that one.
// Callers hold s.mu.
func (s *Simulator) takeFault(r *http.Request) outcome {
	var out outcome
	for _, f := range s.faults {
		if !f.matches(r) {
			continue
		}
		if f.left > 0 {
			f.left--
		}
		out.delay += f.Delay
		out.holdAnswer += f.HoldAnswer
		if f.Message != "" {
			out.message = f.Message
		}
		if f.Reply != nil || f.Hang || f.Drop || f.LoseAnswer {
			out.reply, out.hang, out.drop, out.loseAnswer = f.Reply, f.Hang, f.Drop, f.LoseAnswer
			break
		}
	}
	s.faults = slices.DeleteFunc(s.faults, func(f *activeFault) bool { return f.left == 0 })
	return out
}

// withMessage puts message into an answer body: the deployment message of a
// success, else the first error message field it has.
func withMessage(body any, message string) any {
	b, err := json.Marshal(body)
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil {
		return body
	}
	if d, ok := m["deploymentResult"].(map[string]any); ok {
		d["message"] = message
		return m
	}
	for _, k := range []string{"error_description", "resultMessage", "message"} {
		if _, ok := m[k]; ok {
			m[k] = message
			return m
		}
	}
	return m
}
