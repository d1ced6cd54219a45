package apinizertest

import (
	"net/http"
	"net/url"
	"strings"
)

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
	opCertificateList           = "certificate.list"
	opEnvironmentList           = "environment.list"

	opKeyCreate                   = "key.create"
	opKeyUpdate                   = "key.update"
	opKeyGet                      = "key.get"
	opCredentialPublicKeySet      = "credential.publickey.set"
	opCredentialCertificateSet    = "credential.certificate.set"
	opCredentialCertificateDelete = "credential.certificate.delete"
	opJWKParse                    = "jwk.parse"
	opJWKDelete                   = "jwk.delete"
)

// jwkParseSuffix ends the one APIOps path without a trailing slash.
const jwkParseSuffix = "/jwks/parse-from-certificate"

// route is an APIOps path matched to its operation.
type route struct {
	op, kind, project, name string
	// target is the key or certificate a credential is assigned.
	target string
}

// key is the resource key "kind/project/name".
func (r *route) key() string { return r.kind + "/" + r.project + "/" + r.name }

// read reports whether the operation changes nothing.
func (r *route) read() bool {
	return r.op == opCertificateGet || r.op == opProjectList || r.op == opCertificateList || r.op == opEnvironmentList || r.op == opKeyGet
}

// parseRoute matches an escaped path against the APIOps templates, which all
// end in "/". It returns 404 for any other path and 405 for a known path
// with the wrong method, as Apinizer's framework does.
func parseRoute(method, escapedPath string) (*route, int) {
	rest, ok := strings.CutPrefix(escapedPath, "/apiops/projects/")
	if project, parse := strings.CutSuffix(rest, jwkParseSuffix); ok && parse && project != "" && !strings.Contains(project, "/") {
		// parse-from-certificate is documented without the trailing
		// slash every other path has; with one, it is a JWK's path.
		p, err := url.PathUnescape(project)
		if err != nil || p == "" {
			return nil, http.StatusNotFound
		}
		if method != http.MethodPost {
			return nil, http.StatusMethodNotAllowed
		}
		return &route{op: opJWKParse, kind: "jwk", project: p}, 0
	}
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
		if method == http.MethodGet {
			rt.op, allowed = opCertificateList, method
		}
	case len(segs) == 2 && segs[1] == "environments":
		rt, allowed = &route{op: opEnvironmentList, kind: "project", project: segs[0]}, http.MethodGet
	case len(segs) == 3 && segs[1] == "certificates":
		rt = &route{kind: "certificate", project: segs[0], name: segs[2]}
		rt.op, allowed = itemOp(method, opCertificateUpdate, opCertificateDelete, opCertificateGet)
	case len(segs) == 2 && segs[1] == "keys":
		rt, allowed = &route{op: opKeyCreate, kind: "key", project: segs[0]}, http.MethodPost
	case len(segs) == 3 && segs[1] == "keys":
		rt = &route{kind: "key", project: segs[0], name: segs[2]}
		rt.op, allowed = itemOp(method, opKeyUpdate, opKeyDelete, opKeyGet)
	case len(segs) == 3 && segs[1] == "jwks":
		rt, allowed = &route{op: opJWKDelete, kind: "jwk", project: segs[0], name: segs[2]}, http.MethodDelete
	case len(segs) == 5 && segs[1] == "credentials" && segs[3] == "publicKey":
		rt, allowed = &route{op: opCredentialPublicKeySet, kind: "credential", project: segs[0], name: segs[2], target: segs[4]}, http.MethodPut
	case len(segs) == 5 && segs[1] == "credentials" && segs[3] == "certificate":
		rt, allowed = &route{op: opCredentialCertificateSet, kind: "credential", project: segs[0], name: segs[2], target: segs[4]}, http.MethodPut
	case len(segs) == 4 && segs[1] == "credentials" && segs[3] == "certificate":
		rt, allowed = &route{op: opCredentialCertificateDelete, kind: "credential", project: segs[0], name: segs[2]}, http.MethodDelete
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

// itemOp picks, for a named certificate or key, the operation of method:
// put updates, del deletes, get reads. Any other method is allowed nowhere,
// so it returns "" for both.
func itemOp(method, put, del, get string) (op, allowed string) {
	switch method {
	case http.MethodPut:
		return put, method
	case http.MethodDelete:
		return del, method
	case http.MethodGet:
		return get, method
	}
	return "", ""
}
