package apinizertest

import (
	"crypto/sha1" //nolint:gosec // an id, not a signature
	"encoding/hex"
	"slices"
)

// ReplaceCertificate changes what an environment serves for a certificate
// behind the worker's back, as a person in Apinizer's console or another
// rotation system would: environment's served certificate becomes pemText,
// or, for environment "", the certificate's content everywhere. It is not a
// request: nothing is logged and Applied does not count it. It reports
// whether the certificate exists.
func (s *Simulator) ReplaceCertificate(projectName, name, environment, pemText string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[projectName]
	if p == nil || p.certificates[name] == nil {
		return false
	}
	c := p.certificates[name]
	if environment == "" {
		c.PEM, c.Served = pemText, nil
		return true
	}
	if !slices.Contains(c.Environments, environment) {
		c.Environments = append(c.Environments, environment)
	}
	if c.Served == nil {
		c.Served = map[string]string{}
	}
	c.Served[environment] = pemText
	return true
}

// StaleEnvironment makes certificate writes leave one environment of a
// project serving what it served before (nothing, for a certificate it did
// not have), on, or take effect there again, off. The write still answers
// success for that environment: only reading the certificate back shows
// that the environment does not serve it, as with a gateway that reported
// a deployment it did not make.
func (s *Simulator) StaleEnvironment(projectName, environment string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.stale[[2]string{projectName, environment}] = true
	} else {
		delete(s.stale, [2]string{projectName, environment})
	}
}

// staleServing returns, for a write of c to envs, what the stale
// environments among envs keep serving, to become c.Served; nil when none
// is stale. Callers hold s.mu.
func (s *Simulator) staleServing(projectName string, c *Certificate, envs []string) map[string]string {
	var kept map[string]string
	for _, env := range envs {
		if !s.stale[[2]string{projectName, env}] {
			continue
		}
		if kept == nil {
			kept = map[string]string{}
		}
		kept[env] = ""
		if slices.Contains(c.Environments, env) {
			kept[env] = c.PEM
			if served, ok := c.Served[env]; ok {
				kept[env] = served
			}
		}
	}
	return kept
}

// Bodies of GET /apiops/projects/{projectName}/environments/, in the field
// order of environments_get-environments-by-project.mdx.
type (
	environmentList struct {
		Status      string            `json:"status"`
		ResultList  []environmentInfo `json:"resultList"`
		ResultCount int               `json:"resultCount"`
	}
	environmentInfo struct {
		ID               string `json:"id"`
		Name             string `json:"name"`
		Description      string `json:"description"`
		Type             string `json:"type"`
		AccessURL        string `json:"accessUrl"`
		Status           string `json:"status"`
		Deployed         *bool  `json:"deployed"`
		RedeployRequired *bool  `json:"redeployRequired"`
	}
)

// environmentsBody lists a project's environments as the page shows them.
func environmentsBody(envs []string) environmentList {
	out := environmentList{Status: "SUCCESS", ResultList: []environmentInfo{}, ResultCount: len(envs)}
	for _, env := range envs {
		sum := sha1.Sum([]byte(env)) //nolint:gosec // an id, not a signature
		typ := "SANDBOX"
		if env == "production" {
			typ = "PRODUCTION"
		}
		out.ResultList = append(out.ResultList, environmentInfo{
			ID: hex.EncodeToString(sum[:12]), Name: env, Description: env + " environment", Type: typ,
			AccessURL: "https://gw-" + env + ".example.com", Status: "PUBLISHED",
		})
	}
	return out
}
