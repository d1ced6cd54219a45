package jobs_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestParseSubject(t *testing.T) {
	t.Parallel()
	type parsed struct {
		Bare, Project string
		OK            bool
	}
	for _, tc := range []struct {
		name, subject string
		want          parsed
	}{
		{"a bare subject has no project", "apiops.key.delete", parsed{jobs.SubjectKeyDelete, "", true}},
		{"a scoped subject gives its project", "apiops.key.delete.TeamA", parsed{jobs.SubjectKeyDelete, "TeamA", true}},
		{"a bare five-token subject is not read as scoped", "apiops.credential.publickey.delete", parsed{jobs.SubjectCredentialPublicKeyDelete, "", true}},
		{"the public key subject takes a project too", "apiops.credential.publickey.delete.TeamA", parsed{jobs.SubjectCredentialPublicKeyDelete, "TeamA", true}},
		{"a credential delete for project publickey is scoped", "apiops.credential.delete.publickey", parsed{jobs.SubjectCredentialDelete, "publickey", true}},
		{"a project of two tokens is unknown", "apiops.key.delete.Team.A", parsed{}},
		{"an empty project token is unknown", "apiops.key.delete.", parsed{}},
		{"a wildcard project is unknown", "apiops.key.delete.*", parsed{}},
		{"a full wildcard project is unknown", "apiops.key.delete.>", parsed{}},
		{"an unknown action is unknown", "apiops.key.rotate.TeamA", parsed{}},
		{"a result subject is not a job subject", "apiops.results.key.delete.TeamA", parsed{}},
		{"a prefix of a subject is unknown", "apiops.key", parsed{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got parsed
			got.Bare, got.Project, got.OK = jobs.ParseSubject(tc.subject)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("ParseSubject(%q) (-want +got):\n%s", tc.subject, diff)
			}
		})
	}
}

func TestScopedSubjectRefusesProjectsThatAreNotTokens(t *testing.T) {
	t.Parallel()
	for _, project := range []string{"", "Team.A", "Team*", "Team>", "Team A", "Team\tA", "Team\x00", "Team\u00a0A"} {
		t.Run("project "+project+" has no scoped form", func(t *testing.T) {
			t.Parallel()
			if s, err := jobs.ScopedSubject(jobs.SubjectKeyDelete, project); !errors.Is(err, jobs.ErrProjectNotToken) {
				t.Fatalf("ScopedSubject(%q) = %q, %v; want ErrProjectNotToken", project, s, err)
			}
		})
	}
	for _, project := range []string{"TeamA", "my-project_2", "Ünïcode", "$team"} {
		t.Run("project "+project+" round-trips through its scoped subject", func(t *testing.T) {
			t.Parallel()
			s, err := jobs.ScopedSubject(jobs.SubjectCertificateUpdate, project)
			if err != nil {
				t.Fatal(err)
			}
			bare, got, ok := jobs.ParseSubject(s)
			if !ok || bare != jobs.SubjectCertificateUpdate || got != project {
				t.Fatalf("ParseSubject(%q) = %q, %q, %v", s, bare, got, ok)
			}
		})
	}
}

func TestDecodeOfAScopedSubject(t *testing.T) {
	t.Parallel()
	for _, subject := range jobs.Subjects {
		t.Run(subject+" scoped to the body's project decodes as the bare job", func(t *testing.T) {
			t.Parallel()
			job, err := jobs.Decode(subject+".MyProject", nil, exampleBody(t, subject))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(exampleJob(t, subject), job); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
		t.Run(subject+" scoped to another project is refused as invalid_job on projectName", func(t *testing.T) {
			t.Parallel()
			_, err := jobs.Decode(subject+".TeamB", nil, exampleBody(t, subject))
			var de *jobs.DecodeError
			var fe *jobs.FieldError
			if !errors.As(err, &de) || !errors.As(err, &fe) || !errors.Is(err, jobs.ErrProjectMismatch) {
				t.Fatalf("Decode: %v; want a DecodeError on projectName matching ErrProjectMismatch", err)
			}
			if de.Code() != "invalid_job" || fe.Field != "projectName" || de.JobID == "" {
				t.Fatalf("code %q, field %q, job id %q; want invalid_job, projectName and the body's job id", de.Code(), fe.Field, de.JobID)
			}
		})
	}
}

func TestResultSubjectOfAScopedJob(t *testing.T) {
	t.Parallel()
	for subject, want := range map[string]string{
		"apiops.key.delete.TeamA":                  "apiops.results.key.delete.TeamA",
		"apiops.credential.publickey.delete.TeamA": "apiops.results.credential.publickey.delete.TeamA",
		"apiops.key.delete":                        "apiops.results.key.delete",
	} {
		if got := jobs.ResultSubject(subject); got != want {
			t.Errorf("ResultSubject(%q) = %q, want %q", subject, got, want)
		}
	}
}
