package executor

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// TestStableCodeOfEveryDocumentedError parses every error body the two
// revisions of Apinizer's pages show, in both envelopes, and checks the
// stable code a result would carry.
func TestStableCodeOfEveryDocumentedError(t *testing.T) {
	t.Parallel()
	classic := func(code, description string) string {
		return fmt.Sprintf(`{"error": %q, "error_description": %q}`, code, description)
	}
	failure := func(message string) string {
		return fmt.Sprintf(`{"status": "FAILURE", "resultMessage": %q}`, message)
	}
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"a seeds' missing certificate is not_found", 400, classic("bad_request", "Certificate (name: my-certificate) is not found!"), CodeNotFound},
		{"a seeds' missing credential is not_found", 400, classic("bad_request", "Credential (username: api-user) was not found!"), CodeNotFound},
		{"a seeds' missing project is project_not_found", 404, classic("not_found", "Project(MyProject) was not found or user does not have privilege to access it!"), CodeProjectNotFound},
		{"a seeds' invalid token is unauthorized", 401, classic("unauthorized_client", "Invalid token"), CodeUnauthorized},
		{"a current missing certificate is not_found", 400, failure("Certificate (name: my-certificate) is not found!"), CodeNotFound},
		{"a current missing credential is not_found", 400, failure("Credential (username: api-user) was not found!"), CodeNotFound},
		{"a current missing JWK is not_found", 400, failure("JWK (name: my-jwk) is not found! Try create operation."), CodeNotFound},
		{"a current missing key is not_found", 400, failure("Key (name: my-public-key) is not found!"), CodeNotFound},
		{"a credential without a public key is not_found", 400, failure("Credential (username: api-user) has no public key assigned!"), CodeNotFound},
		{"a current missing project is project_not_found", 400, failure("Project (MyProject) is not found!"), CodeProjectNotFound},
		{"a current hidden project is project_not_found", 400, failure("Project (MyProject) is not found or user does not have privilege to access it!"), CodeProjectNotFound},
		{"a current missing environment is not_found", 400, failure("Environment (Staging) is not found or user does not have privilege to access it!"), CodeNotFound},
		{"a missing permission is permission_denied", 400, failure("User does not have required permission for this operation!"), CodePermissionDenied},
		{"a certificate in use is already_exists", 400, failure("Certificate (name: my-certificate) is already exist!"), CodeAlreadyExists},
		{"the older create text is already_exists", 400, classic("bad_request", "Certificate (name: my-certificate) already exists!"), CodeAlreadyExists},
		{"a key in use is already_exists", 400, failure("Key (name: my-key) is already exist! Try update operation if want to change its value."), CodeAlreadyExists},
		{"an alias in use is already_exists", 400, failure("Alias (my-cert-alias) is already used for another certificate, try changing this value!"), CodeAlreadyExists},
		{"an empty field is bad_request", 400, failure("certificateName value can not be empty!"), CodeBadRequest},
		{"a missing algorithm is bad_request", 400, failure("algorithm is required for SECRET_KEY! Supported values: AES, DES, DESede, RSA"), CodeBadRequest},
		{"an empty key is unauthorized", 401, failure("Empty Key! Client must be authenticated to access this resource."), CodeUnauthorized},
		{"an invalid token is unauthorized", 401, failure("Token is not valid!"), CodeUnauthorized},
		{"an expired token is unauthorized", 401, failure("Token was expired!"), CodeUnauthorized},
		{"an unexpected error is server_error", 500, failure("An unexpected error occurred"), CodeServerError},
		{"a proxy's 502 page is server_error", 502, "<html>502 Bad Gateway</html>", CodeServerError},
		{"a 429 is rate_limited", 429, "", CodeRateLimited},
		{"a bare 403 is permission_denied", 403, classic("access_denied", "no"), CodePermissionDenied},
		{"a bare 404 is not_found", 404, "", CodeNotFound},
		{"a 200 with a failure body keeps the message's code", 200, failure("User does not have required permission for this operation!"), CodePermissionDenied},
		{"an unreadable 200 is invalid_response", 200, "OK", CodeInvalidResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseResponse(tt.status, http.Header{}, []byte(tt.body))
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if got := apiErr.StableCode(); got != tt.want {
				t.Errorf("StableCode() = %q for %d %s, want %q", got, tt.status, tt.body, tt.want)
			}
		})
	}
}

func TestAuthReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"the current expired text is expired", &APIError{StatusCode: 401, Code: "FAILURE", Message: "Token was expired!"}, AuthExpired},
		{"the current invalid text is invalid", &APIError{StatusCode: 401, Code: "FAILURE", Message: "Token is not valid!"}, AuthInvalid},
		{"the current empty key text is missing", &APIError{StatusCode: 401, Code: "FAILURE", Message: "Empty Key! Client must be authenticated to access this resource."}, AuthMissing},
		{"the seeds' invalid token is invalid", &APIError{StatusCode: 401, Code: "unauthorized_client", Message: "Invalid token"}, AuthInvalid},
		{"invalid or expired is invalid", &APIError{StatusCode: 401, Code: "FAILURE", Message: "Invalid or expired token"}, AuthInvalid},
		{"a refused client secret is bad_client_credentials", fmt.Errorf("fetching: %w", &TokenError{StatusCode: 401, Message: "Bad credentials"}), AuthBadClientCredentials},
		{"a 400 is no auth failure", &APIError{StatusCode: 400, Message: "Token was expired!"}, ""},
		{"a transport error is no auth failure", &TransportError{Err: errors.New("reset")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := AuthReason(tt.err); got != tt.want {
				t.Errorf("AuthReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
			if unauthorized := errors.Is(tt.err, ErrUnauthorized); unauthorized != (tt.want != "") {
				t.Errorf("errors.Is(ErrUnauthorized) = %v", unauthorized)
			}
			if tt.want != "" && !errors.Is(tt.err, ErrPermanent) {
				t.Errorf("a rejected credential does not match ErrPermanent")
			}
		})
	}
}
