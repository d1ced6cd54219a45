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
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
}

// Credential is a credential as the simulator stores it.
type Credential struct {
	Username     string `json:"username"`
	HasPublicKey bool   `json:"hasPublicKey"`
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
	requests    []*Request
	inFlight    map[string]int
	maxInFlight map[string]int
	applied     map[string]int
}

type project struct {
	environments []string
	certificates map[string]*Certificate
	keys         map[string]bool
	credentials  map[string]*Credential
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
		inFlight:    map[string]int{},
		maxInFlight: map[string]int{},
		applied:     map[string]int{},
	}
}

// AddProject adds a project with its environments, or replaces the
// environments of an existing one.
func (s *Simulator) AddProject(name string, environments ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.project(name).environments = slices.Clone(environments)
}

// project returns the named project, creating it empty. Callers hold s.mu.
func (s *Simulator) project(name string) *project {
	p := s.projects[name]
	if p == nil {
		p = &project{
			certificates: map[string]*Certificate{},
			keys:         map[string]bool{},
			credentials:  map[string]*Credential{},
		}
		s.projects[name] = p
	}
	return p
}

// AddCertificate adds (or replaces) a certificate deployed to all of the
// project's environments, creating the project if needed.
func (s *Simulator) AddCertificate(projectName, name, pemText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.project(projectName)
	p.certificates[name] = &Certificate{
		Name: name, Alias: name, Environments: slices.Clone(p.environments), PEM: pemText, Revision: 1,
	}
}

// AddKey adds a key, creating the project if needed.
func (s *Simulator) AddKey(projectName, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.project(projectName).keys[name] = true
}

// AddCredential adds a credential, creating the project if needed.
func (s *Simulator) AddCredential(projectName, username string, hasPublicKey bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.project(projectName).credentials[username] = &Credential{Username: username, HasPublicKey: hasPublicKey}
}

// Certificate returns a copy of the named certificate.
func (s *Simulator) Certificate(projectName, name string) (Certificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.projects[projectName]; p != nil {
		if c := p.certificates[name]; c != nil {
			out := *c
			out.Environments = slices.Clone(c.Environments)
			return out, true
		}
	}
	return Certificate{}, false
}

// KeyExists reports whether the named key exists.
func (s *Simulator) KeyExists(projectName, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[projectName]
	return p != nil && p.keys[name]
}

// Credential returns a copy of the named credential.
func (s *Simulator) Credential(projectName, username string) (Credential, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.projects[projectName]; p != nil {
		if c := p.credentials[username]; c != nil {
			return *c, true
		}
	}
	return Credential{}, false
}

// ProjectState is one project's resources in a State.
type ProjectState struct {
	Name         string        `json:"name"`
	Environments []string      `json:"environments"`
	Certificates []Certificate `json:"certificates"`
	Keys         []string      `json:"keys"`
	Credentials  []Credential  `json:"credentials"`
}

// State is a snapshot of everything the simulator holds, sorted by name.
type State struct {
	Projects    []ProjectState `json:"projects"`
	Applied     map[string]int `json:"applied"`
	MaxInFlight map[string]int `json:"maxInFlight"`
}

// State returns a snapshot of the resources and counters.
func (s *Simulator) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Projects: []ProjectState{}, Applied: maps.Clone(s.applied), MaxInFlight: maps.Clone(s.maxInFlight)}
	for name, p := range s.projects {
		ps := ProjectState{
			Name:         name,
			Environments: slices.Clone(p.environments),
			Certificates: []Certificate{},
			Keys:         []string{},
			Credentials:  []Credential{},
		}
		for _, c := range p.certificates {
			c := *c
			c.Environments = slices.Clone(c.Environments)
			ps.Certificates = append(ps.Certificates, c)
		}
		for k := range p.keys {
			ps.Keys = append(ps.Keys, k)
		}
		for _, c := range p.credentials {
			ps.Credentials = append(ps.Credentials, *c)
		}
		slices.SortFunc(ps.Certificates, func(a, b Certificate) int { return strings.Compare(a.Name, b.Name) })
		slices.Sort(ps.Keys)
		slices.SortFunc(ps.Credentials, func(a, b Credential) int { return strings.Compare(a.Username, b.Username) })
		st.Projects = append(st.Projects, ps)
	}
	slices.SortFunc(st.Projects, func(a, b ProjectState) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// SetLatency changes the delay of every answer.
func (s *Simulator) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetStyle changes the response bodies.
func (s *Simulator) SetStyle(style ResponseStyle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.style = style
}

// FailEnvironment makes deployments to one environment of a project fail (on)
// or succeed again (off). The change itself is still applied, so the answer
// is a 200 whose deployment report is partial, as Apinizer's is when a
// gateway is unreachable.
func (s *Simulator) FailEnvironment(projectName, environment string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.failing[[2]string{projectName, environment}] = true
	} else {
		delete(s.failing, [2]string{projectName, environment})
	}
}

// Requests returns a copy of the request log, oldest first. Requests still
// being served have a zero End.
func (s *Simulator) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
		out[i].Query = url.Values(http.Header(r.Query).Clone())
		out[i].Header = r.Header.Clone()
		out[i].Form = maps.Clone(r.Form)
		out[i].Files = maps.Clone(r.Files)
	}
	return out
}

// MaxInFlight returns, per resource key "kind/project/name", the largest
// number of requests the simulator was serving at once. A credential and its
// public key share the key "credential/project/username".
func (s *Simulator) MaxInFlight() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.maxInFlight)
}

// Applied returns, per resource key, the number of changes applied.
func (s *Simulator) Applied() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.applied)
}

// ResetLog clears the request log and the MaxInFlight and Applied counters.
func (s *Simulator) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.maxInFlight = map[string]int{}
	s.applied = map[string]int{}
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
	rec.Form, rec.Files = form.fields, form.files
	rt, routeErr := parseRoute(r.Method, rec.Path)
	if rt != nil {
		if rt.op == opCertificateCreate {
			rt.name = form.fields["certificateName"]
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

// Operations the simulator serves.
const (
	opCertificateUpdate         = "certificate.update"
	opCertificateCreate         = "certificate.create"
	opCertificateDelete         = "certificate.delete"
	opKeyDelete                 = "key.delete"
	opCredentialDelete          = "credential.delete"
	opCredentialPublicKeyDelete = "credential.publickey.delete"
	opCertificateGet            = "certificate.get"
	opProjectList               = "project.list"
)

// route is an APIOps path matched to its operation.
type route struct {
	op, kind, project, name string
}

// key is the resource key "kind/project/name".
func (r *route) key() string { return r.kind + "/" + r.project + "/" + r.name }

// read reports whether the operation changes nothing.
func (r *route) read() bool { return r.op == opCertificateGet || r.op == opProjectList }

// parseRoute matches an escaped path against the APIOps templates, which all
// end in "/". It returns 404 for any other path and 405 for a known path
// with the wrong method, as Apinizer's framework does.
func parseRoute(method, escapedPath string) (*route, int) {
	rest, ok := strings.CutPrefix(escapedPath, "/apiops/projects/")
	if !ok || (rest != "" && !strings.HasSuffix(rest, "/")) {
		return nil, http.StatusNotFound
	}
	if rest == "" {
		if method != http.MethodGet {
			return nil, http.StatusMethodNotAllowed
		}
		return &route{op: opProjectList, kind: "project"}, 0
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" {
			return nil, http.StatusNotFound
		}
		segs[i] = v
	}
	var rt *route
	allowed := ""
	switch {
	case len(segs) == 2 && segs[1] == "certificates":
		rt, allowed = &route{op: opCertificateCreate, kind: "certificate", project: segs[0]}, http.MethodPost
	case len(segs) == 3 && segs[1] == "certificates":
		rt = &route{kind: "certificate", project: segs[0], name: segs[2]}
		switch method {
		case http.MethodPut:
			rt.op, allowed = opCertificateUpdate, method
		case http.MethodDelete:
			rt.op, allowed = opCertificateDelete, method
		case http.MethodGet:
			rt.op, allowed = opCertificateGet, method
		}
	case len(segs) == 3 && segs[1] == "keys":
		rt, allowed = &route{op: opKeyDelete, kind: "key", project: segs[0], name: segs[2]}, http.MethodDelete
	case len(segs) == 3 && segs[1] == "credentials":
		rt, allowed = &route{op: opCredentialDelete, kind: "credential", project: segs[0], name: segs[2]}, http.MethodDelete
	case len(segs) == 4 && segs[1] == "credentials" && segs[3] == "publicKey":
		rt, allowed = &route{op: opCredentialPublicKeyDelete, kind: "credential", project: segs[0], name: segs[2]}, http.MethodDelete
	default:
		return nil, http.StatusNotFound
	}
	if method != allowed {
		return nil, http.StatusMethodNotAllowed
	}
	return rt, 0
}

// apply performs one routed operation on the state and returns the answer.
// Callers hold s.mu.
func (s *Simulator) apply(rt *route, q url.Values, f form) (int, any) {
	if rt.op == opProjectList {
		return s.listProjects()
	}
	p := s.projects[rt.project]
	if p == nil {
		return s.projectMissing(rt.project)
	}
	badRequest := func(description string) (int, any) {
		return errorBody(s.style, http.StatusBadRequest, "bad_request", description)
	}
	if msg := checkQuery(rt.op, q); msg != "" {
		return badRequest(msg)
	}
	key := rt.key()
	switch rt.op {
	case opCertificateGet:
		c := p.certificates[rt.name]
		if c == nil {
			return badRequest("Certificate (name: " + rt.name + ") is not found!")
		}
		return http.StatusOK, getCertificateBody(c)
	case opCertificateCreate, opCertificateUpdate:
		if rt.op == opCertificateCreate && rt.name == "" {
			return badRequest(s.requiredText("certificateName"))
		}
		c := p.certificates[rt.name]
		switch {
		case rt.op == opCertificateUpdate && c == nil:
			return badRequest("Certificate (name: " + rt.name + ") is not found!")
		case rt.op == opCertificateCreate && c != nil:
			return badRequest(s.alreadyExistsText("Certificate (name: " + rt.name + ")"))
		}
		envs, msg := s.checkCertificateForm(p, f)
		if msg != "" {
			return badRequest(msg)
		}
		if c == nil {
			c = &Certificate{Name: rt.name}
			p.certificates[rt.name] = c
		}
		c.Alias = f.fields["alias"]
		c.Description = f.fields["certificateDescription"]
		c.Environments = envs
		c.PEM = f.files["pemEncodedFile"]
		c.Revision++
		s.applied[key]++
		return s.deployment(rt.project, envs, false)
	case opCertificateDelete:
		if p.certificates[rt.name] == nil {
			return badRequest("Certificate (name: " + rt.name + ") is not found!")
		}
		delete(p.certificates, rt.name)
		s.applied[key]++
		return s.deployment(rt.project, p.environments, true)
	case opKeyDelete:
		if !p.keys[rt.name] {
			return badRequest("Key (name: " + rt.name + ") is not found!")
		}
		delete(p.keys, rt.name)
		s.applied[key]++
		return s.deployment(rt.project, p.environments, true)
	case opCredentialDelete:
		if p.credentials[rt.name] == nil {
			return badRequest("Credential (username: " + rt.name + ") was not found!")
		}
		delete(p.credentials, rt.name)
		s.applied[key]++
		return s.deployment(rt.project, p.environments, true)
	default: // opCredentialPublicKeyDelete
		c := p.credentials[rt.name]
		if c == nil {
			return badRequest("Credential (username: " + rt.name + ") was not found!")
		}
		if !c.HasPublicKey && s.style == StyleCurrent {
			return badRequest(noPublicKeyText(rt.name))
		}
		// The older revision succeeds even without a public key assigned;
		// only a removal that removes something is a change.
		if c.HasPublicKey {
			s.applied[key]++
		}
		c.HasPublicKey = false
		return s.deployment(rt.project, p.environments, false)
	}
}

// checkQuery validates the documented query parameters of op.
func checkQuery(op string, q url.Values) string {
	allowed := map[string][]string{}
	switch op {
	case opCertificateDelete, opKeyDelete:
		allowed["jwkDeleteAction"] = []string{"NULLIFY", "DELETE"}
	case opCertificateUpdate:
		allowed["jwkUpdateAction"] = []string{"NULLIFY", "UPDATE"}
		allowed["updateScope"] = []string{"SAME_PROJECT", "ALL_PROJECTS"}
	}
	for name, values := range allowed {
		if v := q.Get(name); v != "" && !slices.Contains(values, v) {
			return "Invalid value for " + name + ": " + v
		}
	}
	return ""
}

// checkCertificateForm checks that every form field Apinizer requires is
// present, that the PEM is a certificate and that the environments exist. It
// returns the environment list, or the error description.
func (s *Simulator) checkCertificateForm(p *project, f form) ([]string, string) {
	for _, name := range []string{"alias", "certificateDescription", "environmentList"} {
		if strings.TrimSpace(f.fields[name]) == "" {
			return nil, s.requiredText(name)
		}
	}
	pemText, ok := f.files["pemEncodedFile"]
	if !ok {
		return nil, s.requiredText("pemEncodedFile")
	}
	if block, _ := pem.Decode([]byte(pemText)); block == nil || block.Type != "CERTIFICATE" {
		return nil, "pemEncodedFile is not a PEM encoded certificate!"
	}
	var envs []string
	for _, e := range strings.Split(f.fields["environmentList"], ",") {
		e = strings.TrimSpace(e)
		if !slices.Contains(p.environments, e) {
			return nil, "Environment (name: " + e + ") was not found!"
		}
		envs = append(envs, e)
	}
	return envs, ""
}

// Wire bodies, in the field order of Apinizer's pages.
type (
	classicSuccess struct {
		Success          bool              `json:"success"`
		DeploymentResult classicDeployment `json:"deploymentResult"`
	}
	classicDeployment struct {
		Success            bool                `json:"success"`
		Message            string              `json:"message"`
		EnvironmentResults []environmentResult `json:"environmentResults"`
	}
	environmentResult struct {
		EnvironmentName string `json:"environmentName"`
		Success         bool   `json:"success"`
		Message         string `json:"message"`
	}
	podsSuccess struct {
		Status           string         `json:"status"`
		DeploymentResult podsDeployment `json:"deploymentResult"`
	}
	podsDeployment struct {
		Success      bool        `json:"success"`
		Message      string      `json:"message,omitempty"`
		ResponseTime int         `json:"responseTime,omitempty"`
		DetailList   []podResult `json:"detailList"`
	}
	podResult struct {
		EnvName      string `json:"envName"`
		PodName      string `json:"podName"`
		PodIP        string `json:"podIp"`
		Success      bool   `json:"success"`
		Detail       string `json:"detail,omitempty"`
		ResponseTime int    `json:"responseTime"`
	}
	classicError struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	podsError struct {
		Status        string `json:"status"`
		ResultMessage string `json:"resultMessage"`
	}
)

// deployment reports (un)deploying a changed resource to envs. Environments
// switched off with FailEnvironment fail; in StylePods only their first pod
// fails, as with a gateway that is partly unreachable. Callers hold s.mu.
func (s *Simulator) deployment(projectName string, envs []string, undeploy bool) (int, any) {
	verb, noun := "Deployed", "Deployment"
	if undeploy {
		verb, noun = "Undeployed", "Undeployment"
	}
	ok, failed := verb+" successfully", noun+" failed: gateway did not respond"
	allOK := true
	for _, e := range envs {
		if s.failing[[2]string{projectName, e}] {
			allOK = false
		}
	}
	message := noun + " completed successfully"
	if !allOK {
		message = noun + " completed with errors"
	}
	if s.style != StyleClassic {
		d := podsDeployment{Success: allOK, Message: message, DetailList: make([]podResult, 0, 2*len(envs))}
		for i, e := range envs {
			fail := s.failing[[2]string{projectName, e}]
			for pod := range 2 {
				r := podResult{
					EnvName: e, PodName: e + "-gateway-" + strconv.Itoa(pod),
					PodIP:   "10.0." + strconv.Itoa(i) + "." + strconv.Itoa(10+pod),
					Success: !(fail && pod == 0), Detail: ok, ResponseTime: 12 + pod,
				}
				switch {
				case !r.Success:
					r.Detail = failed
				case s.style == StyleCurrent:
					// delete-credential.mdx: successful pods carry no detail.
					r.Detail = ""
				}
				d.ResponseTime = max(d.ResponseTime, r.ResponseTime)
				d.DetailList = append(d.DetailList, r)
			}
		}
		if s.style == StyleCurrent {
			d.Message = ""
		} else {
			d.ResponseTime = 0
		}
		return http.StatusOK, podsSuccess{Status: "SUCCESS", DeploymentResult: d}
	}
	d := classicDeployment{Success: allOK, Message: message, EnvironmentResults: make([]environmentResult, 0, len(envs))}
	for _, e := range envs {
		r := environmentResult{EnvironmentName: e, Success: true, Message: ok}
		if s.failing[[2]string{projectName, e}] {
			r.Success, r.Message = false, failed
		}
		d.EnvironmentResults = append(d.EnvironmentResults, r)
	}
	return http.StatusOK, classicSuccess{Success: true, DeploymentResult: d}
}

// errorBody is an error answer in style. StylePods and StyleCurrent report
// every APIOps refusal except a bad token as 400.
func errorBody(style ResponseStyle, status int, code, description string) (int, any) {
	if style != StyleClassic {
		if status != http.StatusUnauthorized {
			status = http.StatusBadRequest
		}
		return status, podsError{Status: "FAILURE", ResultMessage: description}
	}
	return status, classicError{Error: code, ErrorDescription: description}
}
