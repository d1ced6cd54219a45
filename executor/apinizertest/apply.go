package apinizertest

import (
	"encoding/pem"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

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
	case opCertificateList:
		return http.StatusOK, listCertificatesBody(p)
	case opEnvironmentList:
		return http.StatusOK, environmentsBody(p.environments)
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
		stale := s.staleServing(rt.project, c, envs)
		c.Alias = f.fields["alias"]
		c.Description = f.fields["certificateDescription"]
		c.Environments = envs
		c.PEM = f.files["pemEncodedFile"]
		c.Served = stale
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
		if p.keys[rt.name] == nil {
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
	case opCredentialPublicKeyDelete:
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
		c.HasPublicKey, c.PublicKey = false, ""
		return s.deployment(rt.project, p.environments, false)
	}
	return s.applySecret(p, rt, f)
}

// checkQuery validates the documented query parameters of op.
func checkQuery(op string, q url.Values) string {
	allowed := map[string][]string{}
	switch op {
	case opCertificateDelete, opKeyDelete:
		allowed["jwkDeleteAction"] = []string{"NULLIFY", "DELETE"}
	case opCertificateUpdate, opKeyUpdate:
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
