package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestLiveTable(t *testing.T) {
	t.Parallel()
	notAfter := time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		r    jobs.Result
		want string
	}{
		{"a result without live prints nothing", jobs.Result{JobID: "k", Status: jobs.StatusSucceeded}, ""},
		{"each environment is a row, an environment serving nothing shows (none)", jobs.Result{JobID: "a1", Status: jobs.StatusPartial, Live: []jobs.LiveCertificate{
			{EnvironmentName: "production", SHA1Thumbprint: "A1B2", SubjectDN: "CN=example.com", NotBefore: notAfter.AddDate(-1, 0, 0), NotAfter: notAfter},
			{EnvironmentName: "staging"},
		}}, "live after a1 (partial):\n" +
			"  ENVIRONMENT  SHA-1 THUMBPRINT  SUBJECT         NOT BEFORE            NOT AFTER\n" +
			"  production   A1B2              CN=example.com  2026-01-31T12:00:00Z  2027-01-31T12:00:00Z\n" +
			"  staging      (none)                            -                     -\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			printLive(&b, c.r)
			if b.String() != c.want {
				t.Errorf("table:\n%s\nwant:\n%s", b.String(), c.want)
			}
		})
	}
	if done(jobs.Result{Status: jobs.StatusUnchanged}) != true || done(jobs.Result{Status: jobs.StatusPartial}) {
		t.Error("done must hold for succeeded and unchanged only")
	}
}
