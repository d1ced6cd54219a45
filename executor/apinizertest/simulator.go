// Package apinizertest is a faithful fake of Apinizer's APIOps endpoints for
// tests, local runs and benchmarks, modelled on net/http/httptest: a
// Simulator is an http.Handler with in-memory projects, certificates, keys
// and credentials that answers exactly as Apinizer's reference pages show,
// and a Server serves it on 127.0.0.1.
//
// Tests script faults (status codes, Retry-After, HTML pages from a proxy,
// latency, hangs, dropped connections, failing environments) and read back
// what the simulator received: a request log, per-resource concurrency and
// the number of changes applied. All methods are safe for concurrent use.
package apinizertest

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// ResponseStyle selects which documented revision of Apinizer's response
// bodies the simulator speaks.
type ResponseStyle int

const (
	// StyleClassic is the older revision, the reference pages in
	// shared/seeds: {"success": true} with one
	// deploymentResult.environmentResults entry per environment, errors as
	// {"error", "error_description"} with 400, 401 or 404 and the seeds'
	// texts, and a public-key removal that succeeds without a key.
	StyleClassic ResponseStyle = iota
	// StylePods is the mid-2026 style the seeds' README describes:
	// {"status": "SUCCESS"} with deploymentResult.detailList holding one
	// entry per gateway pod (two per environment), and errors as {"status":
	// "FAILURE", "resultMessage"} with 400 for both "not found" and "no
	// permission" (401 stays 401), with the older revision's texts.
	StylePods
	// StyleCurrent is the current revision, shared/apinizer-docs: the
	// bodies of StylePods, its pages' exact message texts (three 401 texts
	// among them), and a public-key removal refused with 400 when the
	// credential has no key.
	StyleCurrent
)

// Config configures a Simulator.
type Config struct {
	// Token is the bearer token every request must carry. Empty accepts any
	// non-empty token.
	Token string
	// Latency delays every answer, as a slow Apinizer would. Default 0;
	// SetLatency changes it at runtime.
	Latency time.Duration
	// Logger receives one line per request. Default: discard.
	Logger *slog.Logger
	// Style selects the response bodies. Default StyleClassic; SetStyle
	// changes it at runtime.
	Style ResponseStyle
	// LogLimit bounds the request log to the newest LogLimit requests, so a
	// long-running simulator does not grow without bound. Default 10000.
	LogLimit int
	// ClientID and ClientSecret, when both set, enable the token endpoint
	// POST /apiops/auth/token (client credentials). Tokens it issues are
	// accepted until they expire, besides Token; an unknown token is then
	// refused even when Token is empty.
	ClientID, ClientSecret string
	// TokenTTL is the lifetime of an issued token. Default 1h.
	TokenTTL time.Duration
}

// DefaultLogLimit is the request log size when Config.LogLimit is zero.
const DefaultLogLimit = 10000

// maxRequestBytes bounds a request body; Apinizer refuses larger uploads too.
const maxRequestBytes = 4 << 20

// Certificate is a certificate as the simulator stores it.
type Certificate struct {
	Name         string   `json:"name"`
	Alias        string   `json:"alias"`
	Description  string   `json:"description"`
	Environments []string `json:"environments"`
	PEM          string   `json:"pem"`
	// Revision counts the contents the certificate has had: 1 when
	// created or seeded, plus one per update.
	Revision int `json:"revision"`
	// Served holds, per environment, the PEM served there when it is not
	// PEM: deployed there alone (DeployCertificate, as when one environment
	// was rotated and another not yet), changed behind the worker's back
	// (ReplaceCertificate), or kept by a stale environment
	// (StaleEnvironment). "" serves nothing there.
	Served map[string]string `json:"served,omitempty"`
}

// Credential is a credential as the simulator stores it.
type Credential struct {
	Username     string `json:"username"`
	HasPublicKey bool   `json:"hasPublicKey"`
	// PublicKey and Certificate name what is assigned, when the simulator
	// assigned it (a seeded HasPublicKey names none).
	PublicKey   string `json:"publicKey,omitempty"`
	Certificate string `json:"certificate,omitempty"`
}

// Request is one request as the simulator received it.
type Request struct {
	Method string `json:"method"`
	// Path is the escaped path as it arrived on the wire.
	Path   string      `json:"path"`
	Query  url.Values  `json:"query"`
	Header http.Header `json:"header"`
	// Form holds the multipart text fields.
	Form map[string]string `json:"form,omitempty"`
	// Files holds the multipart file parts' contents by field name.
	Files map[string]string `json:"files,omitempty"`
	// Body is a JSON request body as it arrived (key and JWK calls). Key
	// material is in it in clear, as Apinizer receives it.
	Body string `json:"body,omitempty"`
	// Status is the response status, 0 when the connection was dropped or
	// the client gave up first.
	Status int       `json:"status"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Resource is the resource key "kind/project/name" the path names,
	// empty for paths outside the APIOps endpoints.
	Resource string `json:"resource,omitempty"`
}

// Simulator is a fake Apinizer. Create it with New.
type Simulator struct {
	logger   *slog.Logger
	logLimit int
	auth     auth

	mu          sync.Mutex
	style       ResponseStyle
	latency     time.Duration
	projects    map[string]*project
	faults      []*activeFault
	failing     map[[2]string]bool // {project, environment}
	stale       map[[2]string]bool // {project, environment}
	requests    []*Request
	inFlight    map[string]int
	maxInFlight map[string]int
	applied     map[string]int
}

type project struct {
	environments []string
	certificates map[string]*Certificate
	keys         map[string]*Key
	credentials  map[string]*Credential
	jwks         map[string]*JWK
}

// New returns a Simulator with no projects.
func New(cfg Config) *Simulator {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogLimit <= 0 {
		cfg.LogLimit = DefaultLogLimit
	}
	return &Simulator{
		auth:        newAuth(cfg),
		logger:      cfg.Logger,
		logLimit:    cfg.LogLimit,
		style:       cfg.Style,
		latency:     cfg.Latency,
		projects:    map[string]*project{},
		failing:     map[[2]string]bool{},
		stale:       map[[2]string]bool{},
		inFlight:    map[string]int{},
		maxInFlight: map[string]int{},
		applied:     map[string]int{},
	}
}

// ServeHTTP answers one APIOps request: it records it, applies any scripted
// fault and the latency, then checks the token, routes, and changes the
// state.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &Request{
		Method: r.Method,
		Path:   r.URL.EscapedPath(),
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
		Start:  time.Now(),
	}
	form, formErr := readForm(w, r)
	rec.Form, rec.Files, rec.Body = form.fields, form.files, string(form.json)
	rt, routeErr := parseRoute(r.Method, rec.Path)
	if rt != nil {
		switch rt.op {
		case opCertificateCreate:
			rt.name = form.fields["certificateName"]
		case opKeyCreate, opJWKParse:
			rt.name = jsonName(form.json)
		}
		if !rt.read() {
			rec.Resource = rt.key()
		}
	}
	if _, ok := rec.Form["client_secret"]; ok {
		// The log is served to tests and over /_sim/requests: no secret.
		rec.Form = maps.Clone(rec.Form)
		rec.Form["client_secret"] = "REDACTED"
	}
	s.begin(rec)
	status := s.serve(w, r, rec, rt, routeErr, form, formErr)
	s.end(rec, status)
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "apiops request",
		slog.String("method", rec.Method), slog.String("path", rec.Path),
		slog.Int("status", status), slog.Duration("duration", rec.End.Sub(rec.Start)))
}

// begin adds rec to the log and to the in-flight count of its resource.
func (s *Simulator) begin(rec *Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= 2*s.logLimit {
		// Trim in bulk so that appending stays amortised O(1).
		s.requests = slices.Clone(s.requests[len(s.requests)-s.logLimit+1:])
	}
	s.requests = append(s.requests, rec)
	if rec.Resource != "" {
		s.inFlight[rec.Resource]++
		s.maxInFlight[rec.Resource] = max(s.maxInFlight[rec.Resource], s.inFlight[rec.Resource])
	}
}

// end completes rec and takes it out of the in-flight count.
func (s *Simulator) end(rec *Request, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Status, rec.End = status, time.Now()
	if rec.Resource != "" {
		s.inFlight[rec.Resource]--
		if s.inFlight[rec.Resource] == 0 {
			delete(s.inFlight, rec.Resource)
		}
	}
	if len(s.requests) > s.logLimit {
		s.requests = s.requests[len(s.requests)-s.logLimit:]
	}
}

// serve produces the answer and returns its status, 0 if none was sent.
func (s *Simulator) serve(w http.ResponseWriter, r *http.Request, rec *Request, rt *route, routeErr int, form form, formErr error) int {
	s.mu.Lock()
	delay := s.latency
	f := s.takeFault(r)
	s.mu.Unlock()
	delay += f.delay
	if delay > 0 && !wait(r, delay) {
		return 0
	}
	switch {
	case f.hang:
		<-r.Context().Done()
		return 0
	case f.drop:
		return drop(w)
	case f.reply != nil:
		return f.reply.write(w)
	}

	if r.URL.Path == TokenPath {
		return s.issueToken(w, r.Method, form)
	}
	if reason := s.auth.check(r.Header.Get("Authorization"), time.Now()); reason != "" {
		return s.fail(w, http.StatusUnauthorized, "unauthorized_client", s.unauthorizedText(reason))
	}
	if routeErr != 0 {
		return writeJSON(w, routeErr, map[string]any{
			"status": routeErr, "error": http.StatusText(routeErr), "path": rec.Path,
		})
	}
	if formErr != nil {
		return s.fail(w, http.StatusBadRequest, "bad_request", "Malformed multipart request!")
	}
	s.mu.Lock()
	status, body := s.apply(rt, r.URL.Query(), form)
	s.mu.Unlock()
	if f.loseAnswer {
		return drop(w)
	}
	if f.message != "" {
		body = withMessage(body, f.message)
	}
	if f.holdAnswer > 0 && !wait(r, f.holdAnswer) {
		return 0
	}
	return writeJSON(w, status, body)
}

// fail writes an error in the current style.
func (s *Simulator) fail(w http.ResponseWriter, status int, code, description string) int {
	s.mu.Lock()
	style := s.style
	s.mu.Unlock()
	status, body := errorBody(style, status, code, description)
	return writeJSON(w, status, body)
}

// wait sleeps for d unless the client gives up first; it reports whether the
// request is still wanted.
func wait(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// drop closes the connection without an answer, as a crashing Apinizer or a
// proxy timing out does.
func drop(w http.ResponseWriter) int {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
	return 0
}

func writeJSON(w http.ResponseWriter, status int, body any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
	return status
}

// form is a request's multipart body.
type form struct {
	fields map[string]string
	files  map[string]string
	json   []byte // an application/json body
}

// errMalformedForm is a multipart body that cannot be read, or is too large.
var errMalformedForm = errors.New("malformed multipart request")

// readForm reads a multipart body completely, so that every fault and
// answer sees the request as sent and the log records it.
func readForm(w http.ResponseWriter, r *http.Request) (form, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return form{}, nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			return form{}, errMalformedForm
		}
		f := form{fields: map[string]string{}}
		for k := range r.PostForm {
			f.fields[k] = r.PostForm.Get(k)
		}
		return f, nil
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return form{}, errMalformedForm
		}
		return form{json: b}, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		// Not multipart (a DELETE has no body); read it so the
		// connection stays usable, and ignore it as Apinizer does.
		_, _ = io.Copy(io.Discard, r.Body)
		return form{}, nil
	}
	f := form{fields: map[string]string{}, files: map[string]string{}}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return f, errMalformedForm
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return f, errMalformedForm
		}
		if part.FileName() != "" {
			f.files[part.FormName()] = string(b)
		} else {
			f.fields[part.FormName()] = string(b)
		}
	}
}
