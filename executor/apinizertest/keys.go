package apinizertest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Key is a key as the simulator stores it.
type Key struct {
	Name         string           `json:"name"`
	Description  string           `json:"description,omitempty"`
	KeyType      string           `json:"keyType"`
	Algorithm    string           `json:"algorithm,omitempty"`
	Environments []KeyEnvironment `json:"environments"`
	// Revision counts the contents the key has had: 1 when created or
	// seeded, plus one per update.
	Revision int  `json:"revision"`
	seeded   bool // added by AddKey
}

// KeyEnvironment is a key's material in one environment. Content is what
// Apinizer received, kept for in-process tests only; the JSON form (the
// dev stack's /_sim/state) carries its SHA-256 instead.
type KeyEnvironment struct {
	EnvironmentName string `json:"environmentName"`
	Alias           string `json:"alias,omitempty"`
	Content         string `json:"-"`
	ContentSHA256   string `json:"contentSha256,omitempty"`
}

func (k *Key) clone() Key {
	out := *k
	out.Environments = slices.Clone(k.Environments)
	return out
}

// JWK is a JWK derived from a certificate.
type JWK struct {
	Name            string `json:"name"`
	Description     string `json:"description,omitempty"`
	CertificateName string `json:"certificateName"`
	EnvironmentName string `json:"environmentName"`
	UseType         string `json:"useType"`
	Algorithm       string `json:"algorithm"`
	// SHA1Thumbprint is the thumbprint of the certificate it was parsed
	// from, as served in EnvironmentName then.
	SHA1Thumbprint string `json:"sha1Thumbprint"`
}

// Key returns a copy of the named key.
func (s *Simulator) Key(projectName, name string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.projects[projectName]; p != nil && p.keys[name] != nil {
		return p.keys[name].clone(), true
	}
	return Key{}, false
}

// JWK returns a copy of the named JWK.
func (s *Simulator) JWK(projectName, name string) (JWK, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.projects[projectName]; p != nil && p.jwks[name] != nil {
		return *p.jwks[name], true
	}
	return JWK{}, false
}

// jsonName is the "name" member of a JSON body, for the request log's
// resource key.
func jsonName(body []byte) string {
	var b struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Name
}

// keyBody is KeyCreateDTO and KeyUpdateDTO.
type keyBody struct {
	Name         *string `json:"name"`
	Description  *string `json:"description"`
	KeyType      *string `json:"keyType"`
	Algorithm    *string `json:"algorithm"`
	Environments *[]struct {
		EnvironmentName string `json:"environmentName"`
		Content         string `json:"content"`
		Alias           string `json:"alias"`
	} `json:"cryptoKeyInfoEnvironmentList"`
}

var (
	keyTypes      = []string{"SECRET_KEY", "PRIVATE_KEY", "PUBLIC_KEY"}
	keyAlgorithms = []string{"AES", "DES", "DESede", "RSA"}
)

// applySecret performs the key, JWK and credential secret operations.
// Callers hold s.mu.
func (s *Simulator) applySecret(p *project, rt *route, f form) (int, any) {
	badRequest := func(description string) (int, any) {
		return errorBody(s.style, http.StatusBadRequest, "bad_request", description)
	}
	key := rt.key()
	switch rt.op {
	case opKeyGet:
		k := p.keys[rt.name]
		if k == nil {
			return badRequest("Key (name: " + rt.name + ") is not found!")
		}
		return http.StatusOK, s.keyList(k)
	case opKeyCreate, opKeyUpdate:
		var b keyBody
		if err := strictJSON(f.json, &b); err != nil {
			return badRequest("Malformed JSON request: " + err.Error())
		}
		k := p.keys[rt.name]
		switch {
		case rt.op == opKeyCreate && rt.name == "":
			return badRequest(s.requiredText("name"))
		case rt.op == opKeyCreate && k != nil:
			return badRequest(s.alreadyExistsText("Key (name: "+rt.name+")") + " Try update operation if want to change its value.")
		case rt.op == opKeyUpdate && k == nil:
			return badRequest("Key (name: " + rt.name + ") is not found!")
		case rt.op == opKeyUpdate && b.Name != nil && *b.Name != rt.name:
			return badRequest("Renaming a key is not supported by the simulator")
		}
		next := &Key{Name: rt.name}
		if k != nil {
			c := k.clone()
			next = &c
		}
		if msg := s.setKey(p, next, b, rt.op == opKeyCreate); msg != "" {
			return badRequest(msg)
		}
		next.Revision++
		next.seeded = false
		p.keys[rt.name] = next
		s.applied[key]++
		envs := make([]string, len(next.Environments))
		for i, e := range next.Environments {
			envs[i] = e.EnvironmentName
		}
		return s.deployment(rt.project, envs, false)
	case opCredentialPublicKeySet, opCredentialCertificateSet:
		c := p.credentials[rt.name]
		if c == nil {
			return badRequest("Credential (username: " + rt.name + ") was not found!")
		}
		if rt.op == opCredentialPublicKeySet {
			k := p.keys[rt.target]
			switch {
			case k == nil:
				return badRequest("Key (name: " + rt.target + ") is not found!")
			case k.KeyType != "PUBLIC_KEY":
				return badRequest("Key (name: " + rt.target + ") is not a PUBLIC_KEY!")
			}
			if c.PublicKey != rt.target {
				s.applied[key]++
			}
			c.HasPublicKey, c.PublicKey = true, rt.target
		} else {
			if p.certificates[rt.target] == nil {
				return badRequest("Certificate (name: " + rt.target + ") is not found!")
			}
			if c.Certificate != rt.target {
				s.applied[key]++
			}
			c.Certificate = rt.target
		}
		return s.deployment(rt.project, p.environments, false)
	case opCredentialCertificateDelete:
		c := p.credentials[rt.name]
		if c == nil {
			return badRequest("Credential (username: " + rt.name + ") was not found!")
		}
		if c.Certificate == "" && s.style == StyleCurrent {
			return badRequest(noCertificateText(rt.name))
		}
		if c.Certificate != "" {
			s.applied[key]++
		}
		c.Certificate = ""
		return s.deployment(rt.project, p.environments, false)
	case opJWKParse:
		return s.parseJWK(p, rt, f)
	case opJWKDelete:
		if p.jwks[rt.name] == nil {
			return badRequest("JWK (name: " + rt.name + ") is not found!")
		}
		delete(p.jwks, rt.name)
		s.applied[key]++
		return s.deployment(rt.project, p.environments, true)
	}
	return badRequest("unsupported operation " + rt.op)
}

// setKey applies a key body to k as Apinizer does: on create every
// required field, on update only the fields given. It returns the refusal.
func (s *Simulator) setKey(p *project, k *Key, b keyBody, create bool) string {
	if b.KeyType != nil {
		k.KeyType = *b.KeyType
	}
	if b.Algorithm != nil {
		k.Algorithm = *b.Algorithm
	}
	if b.Description != nil {
		k.Description = *b.Description
	}
	switch {
	case k.KeyType == "":
		return s.requiredText("keyType")
	case !slices.Contains(keyTypes, k.KeyType):
		return "Invalid keyType: " + k.KeyType + "! Supported values: SECRET_KEY, PRIVATE_KEY, PUBLIC_KEY"
	case k.KeyType == "SECRET_KEY" && k.Algorithm == "":
		return "algorithm is required for SECRET_KEY! Supported values: AES, DES, DESede, RSA"
	case k.Algorithm != "" && !slices.Contains(keyAlgorithms, k.Algorithm):
		return "Invalid algorithm: " + k.Algorithm + "! Supported values: AES, DES, DESede, RSA"
	case b.Environments == nil && create:
		return s.requiredText("cryptoKeyInfoEnvironmentList")
	case b.Environments == nil:
		return ""
	}
	var envs []KeyEnvironment
	for _, e := range *b.Environments {
		if !slices.Contains(p.environments, e.EnvironmentName) {
			return "Environment (name: " + e.EnvironmentName + ") was not found!"
		}
		if e.Content == "" {
			return s.requiredText("content")
		}
		if !validKeyContent(e.Content) {
			return "content is neither valid base64 nor PEM!"
		}
		sum := sha256.Sum256([]byte(e.Content))
		envs = append(envs, KeyEnvironment{EnvironmentName: e.EnvironmentName, Alias: e.Alias, Content: e.Content, ContentSHA256: hex.EncodeToString(sum[:])})
	}
	k.Environments = envs
	return ""
}

// validKeyContent is Apinizer's rule: base64, or PEM text as it is.
func validKeyContent(c string) bool {
	if strings.HasPrefix(strings.TrimSpace(c), "-----BEGIN ") {
		return true
	}
	_, err := base64.StdEncoding.DecodeString(c)
	return err == nil
}

// keyList is get-key's answer: list-keys' shape with one key, and never
// its content.
func (s *Simulator) keyList(k *Key) any {
	type env struct {
		EnvironmentName string  `json:"environmentName"`
		Alias           string  `json:"alias"`
		Source          *string `json:"source"`
	}
	type apiKey struct {
		ID                           string  `json:"id"`
		Name                         string  `json:"name"`
		Description                  string  `json:"description"`
		ProjectID                    string  `json:"projectId"`
		KeyType                      string  `json:"keyType"`
		Algorithm                    *string `json:"algorithm"`
		CryptoKeyInfoEnvironmentList []env   `json:"cryptoKeyInfoEnvironmentList"`
	}
	out := apiKey{ID: "key-" + k.Name, Name: k.Name, Description: k.Description, KeyType: k.KeyType, CryptoKeyInfoEnvironmentList: []env{}}
	if k.Algorithm != "" {
		out.Algorithm = &k.Algorithm
	}
	for _, e := range k.Environments {
		out.CryptoKeyInfoEnvironmentList = append(out.CryptoKeyInfoEnvironmentList, env{EnvironmentName: e.EnvironmentName, Alias: e.Alias})
	}
	if s.style == StyleClassic {
		return struct {
			Success    bool     `json:"success"`
			ResultList []apiKey `json:"resultList"`
		}{true, []apiKey{out}}
	}
	return struct {
		Status     string   `json:"status"`
		ResultList []apiKey `json:"resultList"`
	}{"SUCCESS", []apiKey{out}}
}

// jwkAlgorithms are the parse page's algorithms per key type and use.
var jwkAlgorithms = map[[2]string][]string{
	{"RSA", "SIGNATURE"}:  {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
	{"RSA", "ENCRYPTION"}: {"RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512"},
	{"EC", "SIGNATURE"}:   {"ES256", "ES384", "ES512", "ES256K"},
	{"EC", "ENCRYPTION"}:  {"ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW", "ECDH-1PU", "ECDH-1PU+A128KW", "ECDH-1PU+A192KW", "ECDH-1PU+A256KW"},
	{"OKP", "SIGNATURE"}:  {"EdDSA"},
	{"OKP", "ENCRYPTION"}: {"ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW", "ECDH-1PU", "ECDH-1PU+A128KW", "ECDH-1PU+A192KW", "ECDH-1PU+A256KW"},
}

// parseJWK derives a JWK from the certificate an environment serves.
func (s *Simulator) parseJWK(p *project, rt *route, f form) (int, any) {
	badRequest := func(description string) (int, any) {
		return errorBody(s.style, http.StatusBadRequest, "bad_request", description)
	}
	var b struct {
		Name            string `json:"name"`
		Description     string `json:"description"`
		CertificateName string `json:"certificateName"`
		EnvironmentName string `json:"environmentName"`
		UseType         string `json:"useType"`
		Algorithm       string `json:"algorithm"`
	}
	if err := strictJSON(f.json, &b); err != nil {
		return badRequest("Malformed JSON request: " + err.Error())
	}
	for _, req := range [][2]string{{"name", b.Name}, {"certificateName", b.CertificateName}, {"environmentName", b.EnvironmentName}, {"useType", b.UseType}, {"algorithm", b.Algorithm}} {
		if req[1] == "" {
			return badRequest(s.requiredText(req[0]))
		}
	}
	if p.jwks[b.Name] != nil {
		return badRequest(s.alreadyExistsText("JWK (name: " + b.Name + ")"))
	}
	c := p.certificates[b.CertificateName]
	if c == nil {
		return badRequest("Certificate (name: " + b.CertificateName + ") is not found!")
	}
	pemText := c.PEM
	if served, ok := c.Served[b.EnvironmentName]; ok {
		pemText = served
	}
	if !slices.Contains(c.Environments, b.EnvironmentName) || pemText == "" {
		return badRequest("Environment (name: " + b.EnvironmentName + ") was not found!")
	}
	if b.UseType != "SIGNATURE" && b.UseType != "ENCRYPTION" {
		return badRequest("Invalid useType: " + b.UseType + "! Supported values: SIGNATURE, ENCRYPTION")
	}
	kty := certificateKeyType(pemText)
	if !slices.Contains(jwkAlgorithms[[2]string{kty, b.UseType}], b.Algorithm) {
		return badRequest("Algorithm (" + b.Algorithm + ") is not valid for key type " + kty + " and use " + b.UseType + "!")
	}
	p.jwks[b.Name] = &JWK{Name: b.Name, Description: b.Description, CertificateName: b.CertificateName,
		EnvironmentName: b.EnvironmentName, UseType: b.UseType, Algorithm: b.Algorithm, SHA1Thumbprint: thumbprint(pemText)}
	s.applied[rt.key()]++
	return s.deployment(rt.project, []string{b.EnvironmentName}, false)
}

// certificateKeyType is the JWK key type of a certificate's public key.
func certificateKeyType(pemText string) string {
	der := jobs.FirstCertificate(pemText)
	if der == nil {
		return ""
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return ""
	}
	switch x.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	case ed25519.PublicKey:
		return "OKP"
	}
	return ""
}

// strictJSON decodes a request body, refusing members the DTO does not
// have, as Jackson configured to fail on unknown properties does.
func strictJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// noCertificateText is the current revision's refusal to remove the
// certificate of a credential that has none. The page gives the rule (400)
// but not the words; these follow its other messages.
func noCertificateText(username string) string {
	return "Credential (username: " + username + ") has no certificate assigned!"
}
