package apinizertest

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

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
			keys:         map[string]*Key{},
			credentials:  map[string]*Credential{},
			jwks:         map[string]*JWK{},
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

// DeployCertificate makes environment serve pemText for the named
// certificate, creating the certificate (aliased by its name) if needed,
// while its other environments keep theirs: a certificate rotated in one
// environment and not yet in another, or certificates of chosen validity
// per environment.
func (s *Simulator) DeployCertificate(projectName, name, environment, pemText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.project(projectName)
	c := p.certificates[name]
	if c == nil {
		c = &Certificate{Name: name, Alias: name, PEM: pemText, Revision: 1}
		p.certificates[name] = c
	}
	if !slices.Contains(c.Environments, environment) {
		c.Environments = append(c.Environments, environment)
	}
	if c.Served == nil {
		c.Served = map[string]string{}
	}
	c.Served[environment] = pemText
}

// RemoveCertificate deletes the named certificate, as if someone deleted it
// in Apinizer's console.
func (s *Simulator) RemoveCertificate(projectName, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.projects[projectName]; p != nil {
		delete(p.certificates, name)
	}
}

// AddKey adds a PUBLIC_KEY deployed to all of the project's environments,
// creating the project if needed.
func (s *Simulator) AddKey(projectName, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.project(projectName)
	k := &Key{Name: name, KeyType: "PUBLIC_KEY", Revision: 1, seeded: true}
	for _, env := range p.environments {
		k.Environments = append(k.Environments, KeyEnvironment{EnvironmentName: env})
	}
	p.keys[name] = k
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
			out.Served = maps.Clone(c.Served)
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
	return p != nil && p.keys[name] != nil
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
	// KeyDetails holds the keys made or changed through the API (not the
	// ones AddKey seeded); it and JWKs are left out while empty.
	KeyDetails []Key `json:"keyDetails,omitempty"`
	JWKs       []JWK `json:"jwks,omitempty"`
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
			c.Served = maps.Clone(c.Served)
			ps.Certificates = append(ps.Certificates, c)
		}
		for _, name := range slices.Sorted(maps.Keys(p.keys)) {
			ps.Keys = append(ps.Keys, name)
			if k := p.keys[name]; !k.seeded || k.Revision > 1 {
				ps.KeyDetails = append(ps.KeyDetails, k.clone())
			}
		}
		for _, name := range slices.Sorted(maps.Keys(p.jwks)) {
			ps.JWKs = append(ps.JWKs, *p.jwks[name])
		}
		for _, c := range p.credentials {
			ps.Credentials = append(ps.Credentials, *c)
		}
		slices.SortFunc(ps.Certificates, func(a, b Certificate) int { return strings.Compare(a.Name, b.Name) })
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
