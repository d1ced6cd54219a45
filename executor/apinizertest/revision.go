package apinizertest

import "net/http"

// The texts that differ between the two revisions of Apinizer's pages. The
// current revision's are its pages' exact words; callers hold s.mu or read
// s.style under it.

// projectMissing answers a call on a project that does not exist: 404 in
// the older revision, 400 in the current one.
func (s *Simulator) projectMissing(name string) (int, any) {
	if s.style == StyleCurrent {
		return errorBody(s.style, http.StatusBadRequest, "bad_request",
			"Project ("+name+") is not found or user does not have privilege to access it!")
	}
	return errorBody(s.style, http.StatusNotFound, "not_found",
		"Project("+name+") was not found or user does not have privilege to access it!")
}

// alreadyExistsText is a create's refusal of a name in use; what is
// "Certificate (name: c)".
func (s *Simulator) alreadyExistsText(what string) string {
	if s.style == StyleCurrent {
		return what + " is already exist!"
	}
	return what + " already exists!"
}

// requiredText is the refusal of an empty required field.
func (s *Simulator) requiredText(field string) string {
	switch {
	case s.style == StyleCurrent:
		return field + " value can not be empty!"
	case field == "pemEncodedFile":
		return "pemEncodedFile is required as a file part!"
	}
	return field + " is required!"
}

// noPublicKeyText is the current revision's refusal to remove a public key
// from a credential that has none. The page gives the rule (400) but not
// the words; these follow its other messages.
func noPublicKeyText(username string) string {
	return "Credential (username: " + username + ") has no public key assigned!"
}

// Reasons a bearer token is refused.
const (
	authMissing = "missing"
	authInvalid = "invalid"
	authExpired = "expired"
)

// unauthorizedText is the 401 message for reason: the older revision has
// one text for every case, the current one three.
func (s *Simulator) unauthorizedText(reason string) string {
	s.mu.Lock()
	style := s.style
	s.mu.Unlock()
	if style != StyleCurrent {
		return "Invalid token"
	}
	switch reason {
	case authMissing:
		return "Empty Key! Client must be authenticated to access this resource."
	case authExpired:
		return "Token was expired!"
	}
	return "Token is not valid!"
}
