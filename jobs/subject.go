package jobs

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// A job subject comes in two forms, both captured by the jobs stream:
//
//	bare    apiops.<resource>.<action>            apiops.key.delete
//	scoped  apiops.<resource>.<action>.<project>  apiops.key.delete.TeamA
//
// The scoped form carries the job's project as the subject's last token, so
// that a NATS user can be allowed to publish for one project only
// (apiops.*.*.TeamA). The token must equal the body's projectName; the bare
// form carries no project and stays valid for producers allowed every
// project. The result of a job goes to ResultSubject of the subject it came
// on, so a scoped job's result is apiops.results.<resource>.<action>.<project>.
//
// A project can use the scoped form only if its name is a NATS subject token:
// not empty, and without '.', '*', '>', white space or control characters
// (ValidProjectToken). Other projects use the bare form.

var (
	// ErrProjectMismatch: the project token of a scoped subject differs
	// from the body's projectName. A producer allowed one project must not
	// reach another by naming it in the body.
	ErrProjectMismatch = errors.New("project does not match the subject")
	// ErrProjectNotToken: a project name that cannot be the last token of a
	// scoped subject.
	ErrProjectNotToken = errors.New("project name is not a NATS subject token")
)

// ParseSubject splits a job subject into its bare form (one of Subjects) and,
// for the scoped form, its project token. ok is false for any other subject.
func ParseSubject(subject string) (bare, project string, ok bool) {
	// Exact matches first, so that a bare subject is never read as a
	// scoped shorter one.
	for _, s := range Subjects {
		if subject == s {
			return s, "", true
		}
	}
	for _, s := range Subjects {
		// No bare subject is a prefix of another plus one token
		// ("apiops.credential.delete" and "apiops.credential.publickey.delete"
		// differ in their third token), so at most one form matches.
		if rest, found := strings.CutPrefix(subject, s+"."); found && ValidProjectToken(rest) {
			return s, rest, true
		}
	}
	return "", "", false
}

// ScopedSubject returns the scoped form of a bare job subject for project:
// ScopedSubject("apiops.key.delete", "TeamA") is "apiops.key.delete.TeamA".
// A project that is not a subject token returns ErrProjectNotToken.
func ScopedSubject(bare, project string) (string, error) {
	if !ValidProjectToken(project) {
		return "", fmt.Errorf("jobs: scoped subject for project %s: %w", quote(project), ErrProjectNotToken)
	}
	return bare + "." + project, nil
}

// ValidProjectToken reports whether project can be the project token of a
// scoped subject: a non-empty NATS token of printable characters.
func ValidProjectToken(project string) bool {
	if project == "" {
		return false
	}
	for _, r := range project {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// CheckProject checks that job belongs to the project a scoped subject
// named; an empty project (the bare form) always passes. A mismatch is a
// *FieldError on projectName matching ErrProjectMismatch, which Decode
// reports with the code invalid_job: the job is refused before any call.
func CheckProject(job Job, project string) error {
	if project == "" {
		return nil
	}
	if got := job.Resource().Project; got != project {
		return &FieldError{
			Field:  "projectName",
			Err:    ErrProjectMismatch,
			Detail: fmt.Sprintf("subject names project %s, body has %s", quote(project), quote(got)),
		}
	}
	return nil
}
