package executor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Stable codes of the worker's own refusals of key material, made before
// any call.
const (
	// CodeSecretInClear: SECRET_KEY or PRIVATE_KEY material in clear in a
	// job (jobs.ErrSecretInClear); the executor refuses it again in case a
	// job reaches it without Decode.
	CodeSecretInClear = "secret_in_clear"
	// CodeUndecryptable: encryptedContent that none of the worker's age
	// identities opens, or whose clear form is not base64. A replay works
	// once the worker holds the identity it was encrypted to.
	CodeUndecryptable = "undecryptable"
)

// maxClearKeySize bounds the clear form of one environment's material.
const maxClearKeySize = jobs.MaxKeyContentSize

// LoadIdentities reads an age identity file: one X25519 identity
// ("AGE-SECRET-KEY-1…") a line, comments and blank lines ignored. Several
// lines let producers move to a new recipient without a flag day: the
// worker opens what was encrypted to any of them. Errors never quote the
// file.
func LoadIdentities(path string) ([]age.Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("executor: age identity file: %w", err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	clear(b)
	if err != nil {
		// age's message may quote part of a malformed line.
		return nil, fmt.Errorf("%w: age identity file %s holds no valid identity or a malformed line", ErrInvalidConfig, path)
	}
	return ids, nil
}

// keyEnvironmentBody is one entry of cryptoKeyInfoEnvironmentList on the
// wire: content in clear, as Apinizer wants it.
type keyEnvironmentBody struct {
	EnvironmentName string `json:"environmentName"`
	Content         string `json:"content"`
	Alias           string `json:"alias,omitempty"`
}

// keyBody is Apinizer's KeyCreateDTO / KeyUpdateDTO.
type keyBody struct {
	Name                         string               `json:"name"`
	Description                  string               `json:"description,omitempty"`
	KeyType                      jobs.KeyType         `json:"keyType"`
	Algorithm                    jobs.KeyAlgorithm    `json:"algorithm,omitempty"`
	CryptoKeyInfoEnvironmentList []keyEnvironmentBody `json:"cryptoKeyInfoEnvironmentList,omitempty"`
}

// keyRequest builds a key create (POST …/keys/) or update (PUT
// …/keys/{keyName}/) with the material decrypted into the body. The clear
// material is also returned in the request's secrets, so that an answer
// echoing it is redacted, and the body is wiped when the call ends.
func (c *Client) keyRequest(j jobs.Job, project, name string, f jobs.KeyFields, update *jobs.KeyUpdate) (*request, error) {
	var (
		u   *url.URL
		err error
	)
	method := http.MethodPost
	if update != nil {
		method = http.MethodPut
		u, err = apiopsURL(c.base, project, lit("keys"), segment{"keyName", name})
	} else {
		if err = checkParam("keyName", name); err == nil {
			u, err = apiopsURL(c.base, project, lit("keys"))
		}
	}
	if err != nil {
		return nil, err
	}
	if update != nil {
		setQuery(u, "jwkUpdateAction", string(update.JWKUpdateAction), "updateScope", string(update.UpdateScope))
	}
	b := keyBody{Name: name, Description: f.Description, KeyType: f.KeyType, Algorithm: f.Algorithm}
	var secrets []string
	for _, e := range f.CryptoKeyInfoEnvironmentList {
		content := e.Content
		switch {
		case f.KeyType.Secret() && content != "":
			return nil, &RequestError{Err: fmt.Errorf("%s material of environment %q in clear in job %s", f.KeyType, e.EnvironmentName, j.ID()), code: CodeSecretInClear}
		case f.KeyType.Secret():
			content, err = c.decrypt(e.EncryptedContent)
			if err != nil {
				return nil, &RequestError{Err: fmt.Errorf("encryptedContent of environment %q: %w", e.EnvironmentName, err), code: CodeUndecryptable}
			}
			secrets = append(secrets, content)
		}
		b.CryptoKeyInfoEnvironmentList = append(b.CryptoKeyInfoEnvironmentList, keyEnvironmentBody{EnvironmentName: e.EnvironmentName, Content: content, Alias: e.Alias})
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("executor: encoding key: %w: %w", err, ErrPermanent)
	}
	return &request{method: method, url: u.String(), body: body, contentType: "application/json", kind: jobs.KindKey, secrets: secrets}, nil
}

// errNoIdentity: the worker was given no age identity.
var errNoIdentity = errors.New("the worker has no age identity (WORKER_AGE_IDENTITY_FILE)")

// decrypt opens an armored age file with the worker's identities and
// returns the clear content, which must be base64 as Apinizer wants it.
// Errors never hold the clear form.
func (c *Client) decrypt(armored string) (string, error) {
	if len(c.identities) == 0 {
		return "", errNoIdentity
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(strings.TrimSpace(armored)+"\n")), c.identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return "", errors.New("none of the worker's age identities opens it; encrypt to the worker's recipient")
		}
		return "", errors.New("not a valid age file")
	}
	clearText, err := io.ReadAll(io.LimitReader(r, maxClearKeySize+1))
	if err != nil {
		return "", errors.New("not a valid age file")
	}
	content := strings.TrimSpace(string(clearText))
	clear(clearText)
	switch {
	case len(content) > maxClearKeySize:
		return "", fmt.Errorf("its clear form is over %d bytes", maxClearKeySize)
	case content == "":
		return "", errors.New("its clear form is empty")
	}
	if _, err := base64.StdEncoding.DecodeString(content); err != nil {
		return "", errors.New("its clear form is not base64; encrypt the content value Apinizer wants")
	}
	return content, nil
}

// jwkParseRequest builds POST …/jwks/parse-from-certificate, the one APIOps
// path without a trailing slash.
func (c *Client) jwkParseRequest(j *jobs.JWKParse) (*request, error) {
	if err := checkParam("jwkName", j.JWKName); err != nil {
		return nil, err
	}
	u, err := apiopsURL(c.base, j.ProjectName, lit("jwks"), lit("parse-from-certificate"))
	if err != nil {
		return nil, err
	}
	u.Path, u.RawPath = strings.TrimSuffix(u.Path, "/"), strings.TrimSuffix(u.RawPath, "/")
	body, err := json.Marshal(struct {
		Name            string          `json:"name"`
		Description     string          `json:"description,omitempty"`
		CertificateName string          `json:"certificateName"`
		EnvironmentName string          `json:"environmentName"`
		UseType         jobs.JWKUseType `json:"useType"`
		Algorithm       string          `json:"algorithm"`
	}{j.JWKName, j.Description, j.CertificateName, j.EnvironmentName, j.UseType, j.Algorithm})
	if err != nil {
		return nil, fmt.Errorf("executor: encoding JWK: %w: %w", err, ErrPermanent)
	}
	return &request{method: http.MethodPost, url: u.String(), body: body, contentType: "application/json", kind: jobs.KindJWK}, nil
}

// apiKey is a key in get-key's answer (list-keys' shape). Content is not
// documented: Apinizer never returns it; it is read if some answer does.
type apiKey struct {
	Name                         string `json:"name"`
	Description                  string `json:"description"`
	KeyType                      string `json:"keyType"`
	Algorithm                    string `json:"algorithm"`
	CryptoKeyInfoEnvironmentList []struct {
		EnvironmentName string `json:"environmentName"`
		Alias           string `json:"alias"`
		Content         string `json:"content"`
	} `json:"cryptoKeyInfoEnvironmentList"`
}

// holdsKey reads a key back (GET …/keys/{keyName}/) after a create that
// may have been applied was refused as "already exists", and reports
// whether it is the job's: same type, algorithm and environments with
// their aliases, and the same content in every environment. Content can
// only be compared when the answer carries it, which get-key.mdx says it
// never does; otherwise why says so.
func (c *Client) holdsKey(ctx context.Context, j *jobs.KeyCreate, req *request) (same bool, why string, err error) {
	u, err := apiopsURL(c.base, j.ProjectName, lit("keys"), segment{"keyName", j.KeyName})
	if err != nil {
		return false, "", err
	}
	body, err := c.read(ctx, &request{method: http.MethodGet, url: u.String(), kind: jobs.KindKey}, c.retry.NewBackOff())
	if err != nil {
		return false, "", err
	}
	var b struct {
		ResultList []apiKey `json:"resultList"`
		Result     *apiKey  `json:"result"`
	}
	if err := json.Unmarshal(body, &b); err != nil || (len(b.ResultList) == 0 && b.Result == nil) {
		return false, "", &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "unparseable key: " + excerpt(body)}
	}
	live := b.Result
	if live == nil {
		live = &b.ResultList[0]
	}
	var sent keyBody
	if err := json.Unmarshal(req.body, &sent); err != nil {
		return false, "", fmt.Errorf("executor: reading the key request: %w: %w", err, ErrPermanent)
	}
	if live.KeyType != string(j.KeyType) || (j.Algorithm != "" && live.Algorithm != string(j.Algorithm)) {
		return false, "the key read back has another type or algorithm: not this job's", nil
	}
	for _, e := range sent.CryptoKeyInfoEnvironmentList {
		found, comparable := false, false
		for _, l := range live.CryptoKeyInfoEnvironmentList {
			if l.EnvironmentName != e.EnvironmentName || (e.Alias != "" && l.Alias != e.Alias) {
				continue
			}
			found, comparable = true, l.Content != ""
			if comparable && l.Content != e.Content {
				return false, "the key read back holds other material: not this job's", nil
			}
		}
		switch {
		case !found:
			return false, "the key read back is not deployed as this job asks: not this job's", nil
		case !comparable:
			return false, "a key of this name, type and environments exists, but Apinizer never returns key content, so the worker cannot tell it is this job's; check it and send key.update if it is not", nil
		}
	}
	return true, "", nil
}
