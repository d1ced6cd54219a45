package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// Echo encodings of a secret, each a valid JSON string's content, as a
// server or proxy may write it.
var echoes = []struct {
	name   string
	encode func(string) string
}{
	{"raw", func(s string) string { return quoteMinimal.Replace(s) }},
	{"with its slashes escaped", func(s string) string { return strings.ReplaceAll(quoteMinimal.Replace(s), "/", `\/`) }},
	{"as \\u escapes", func(s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		return b.String()
	}},
	{"with every other character an upper-case \\u escape", func(s string) string {
		var b strings.Builder
		for i, r := range s {
			if i%2 == 0 {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteString(quoteMinimal.Replace(string(r)))
			}
		}
		return b.String()
	}},
}

// quoteMinimal escapes what a JSON string cannot hold as it is.
var quoteMinimal = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// Success bodies with one place a secret can be echoed, given as it is
// already escaped for a JSON string.
var successBodies = []struct {
	name string
	body func(echo string) string
}{
	{"the deployment message", func(e string) string {
		return `{"success":true,"deploymentResult":{"success":true,"message":"Deployed ` + e + `","environmentResults":[]}}`
	}},
	{"an environment name", func(e string) string {
		return `{"success":true,"deploymentResult":{"success":true,"message":"ok","environmentResults":[{"environmentName":"` + e + `","success":true,"message":"ok"}]}}`
	}},
	{"an environment message", func(e string) string {
		return `{"success":true,"deploymentResult":{"success":false,"message":"ok","environmentResults":[{"environmentName":"production","success":false,"message":"` + e + `"}]}}`
	}},
	{"a pod's name and detail", func(e string) string {
		return `{"status":"SUCCESS","deploymentResult":{"success":false,"detailList":[{"envName":"production","podName":"` + e + `","podIp":"10.0.0.1","success":false,"detail":"` + e + `"}]}}`
	}},
	{"a pod's address", func(e string) string {
		return `{"status":"SUCCESS","deploymentResult":{"success":true,"envName":"production","podName":"p","podIp":"` + e + `","detailList":[]}}`
	}},
	{"a message of a 200 that reports failure", func(e string) string {
		return `{"status":"FAILURE","resultMessage":"refused ` + e + `"}`
	}},
	// An unreadable body is reported by an excerpt of its raw bytes, where
	// no JSON decoding takes the escapes out.
	{"an unreadable body", func(e string) string { return `{"success": tru ` + e }},
	{"an unreadable body at the excerpt's cut-off", func(e string) string {
		return strings.Repeat("x", maxExcerptBytes-10) + " " + e
	}},
}

// echoServer answers every APIOps call with body(echo), where echo is what
// secretOf picks from the request and encode writes it as; it also issues
// accessToken from the token endpoint.
func echoServer(t *testing.T, accessToken string, secretOf func(*http.Request) string, encode func(string) string, body func(string) string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == TokenPath {
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": accessToken, "token_type": "Bearer", "expires_in": 3600})
			return
		}
		_, _ = w.Write([]byte(body(encode(secretOf(r)))))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkNoSecret fails if the secret, the form it was echoed in or the first
// half of either is anywhere in what Execute returned, and if nothing was
// redacted (the echo would then not have been tested).
func checkNoSecret(t *testing.T, secret, echoed string, resp Response, err error) {
	t.Helper()
	out, _ := json.Marshal(resp)
	text := string(out)
	if err != nil {
		text += " " + err.Error()
		if b, jerr := json.Marshal(err); jerr == nil {
			text += " " + string(b)
		}
	}
	for _, form := range []string{secret, echoed} {
		if strings.Contains(text, form[:len(form)/2]) {
			t.Errorf("LEAK: the secret (or half of it) is in what Execute returned: %s", text)
		}
	}
	if !strings.Contains(text, redacted) {
		t.Errorf("nothing was redacted in %s: the echo was lost before it could leak", text)
	}
}

func TestTokenEchoedInASuccessBodyIsRedacted(t *testing.T) {
	t.Parallel()
	const token = "tok/3n+Zq9/VXrw8=kZ"
	for _, body := range successBodies {
		for _, echo := range echoes {
			t.Run("a token echoed "+echo.name+" in "+body.name+" is redacted", func(t *testing.T) {
				t.Parallel()
				srv := echoServer(t, "", func(r *http.Request) string {
					return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				}, echo.encode, body.body)
				c := newEchoClient(t, Config{BaseURL: srv.URL, Token: func() (string, error) { return token, nil }})
				resp, err := c.Execute(context.Background(), &jobs.KeyDelete{JobID: "j", ProjectName: "P", KeyName: "k"}, Call{})
				checkNoSecret(t, token, echo.encode(token), resp, err)
			})
		}
	}
}

func TestClientCredentialsEchoedInASuccessBodyAreRedacted(t *testing.T) {
	t.Parallel()
	const (
		accessToken = "eyJhbGciOi.eyJzdWIiOiJvcHMifQ/sig+nature"
		secret      = "cl/ent-s3cret\"with\\quotes"
	)
	for _, which := range []struct {
		name, secret string
		of           func(*http.Request) string
	}{
		{"the access token", accessToken, func(r *http.Request) string {
			return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}},
		{"the client secret", secret, func(*http.Request) string { return secret }},
	} {
		for _, echo := range echoes {
			for _, body := range successBodies {
				t.Run(which.name+" echoed "+echo.name+" in "+body.name+" is redacted", func(t *testing.T) {
					t.Parallel()
					srv := echoServer(t, accessToken, which.of, echo.encode, body.body)
					c := newEchoClient(t, Config{BaseURL: srv.URL, ClientCredentials: &ClientCredentials{
						ClientID: "ops", ClientSecret: func() (string, error) { return secret, nil },
					}})
					resp, err := c.Execute(context.Background(), &jobs.KeyDelete{JobID: "j", ProjectName: "P", KeyName: "k"}, Call{})
					checkNoSecret(t, which.secret, echo.encode(which.secret), resp, err)
				})
			}
		}
	}
}

func newEchoClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.AttemptTimeout = 5 * time.Second
	cfg.Retry = RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1, MaxAttempts: 1}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestRedactorBody(t *testing.T) {
	t.Parallel()
	const secret = "ab/cd\u00e9\U0001F600"
	r := newRedactor(secret, "short")
	tests := []struct {
		name, in, want string
	}{
		{"a raw secret is replaced", `x ab/cdé😀 y`, `x REDACTED y`},
		{"an escaped slash is replaced whole", `"x ab\/cdé😀 y"`, `"x REDACTED y"`},
		{"a surrogate pair is replaced whole", `"ab/cd\u00e9\ud83d\ude00!"`, `"REDACTED!"`},
		{"two echoes are both replaced", `ab\/cdé😀ab/cd\u00E9😀`, `REDACTEDREDACTED`},
		{"an escape that only starts the secret is kept", `\u0061b/cd`, `\u0061b/cd`},
		{"a secret shorter than minSecretLen is left alone", `short`, `short`},
		{"a stray backslash stays", `a\qb ab\/cdé😀`, `a\qb REDACTED`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(r.body([]byte(tt.in))); got != tt.want {
				t.Errorf("body(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
