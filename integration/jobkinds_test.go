package integration

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
	"github.com/apiops-worker/apiops-worker/jobs"
)

// TestEveryJobKindThroughEnqueue sends one job of each of the six kinds with the enqueue
// CLI, as an operator would (`enqueue ... --wait`), through one NATS node and one worker to
// the simulator, and checks the CLI's printed result, the results stream and what the
// simulator received and holds.
func TestEveryJobKindThroughEnqueue(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const project = "KindsProject"

	seedPEM := mustPEM(t, "seeded.example.com")
	newPEM := mustPEM(t, "rotated.example.com")

	nw := startNetwork(t)
	node := startNATS(t, nw, "nats-1")
	sim := startSeededSim(t, nw, []seedProject{{
		Name:         project,
		Environments: []string{"production", "staging"},
		Certificates: []seedCertificate{{Name: "rotate-me", PEM: seedPEM}, {Name: "remove-me", PEM: seedPEM}},
		Keys:         []string{"old-key"},
		Credentials:  []seedCredential{{Username: "leaver", HasPublicKey: true}, {Username: "keeper", HasPublicKey: true}},
	}})
	startWorker(t, nw, sim, workerSpec{Name: "worker-kinds", NATSURL: node.NetworkURL, Concurrency: 4})
	results := watchResults(t, jetStream(t, node.HostURL(t)))

	pemFiles := map[string]string{"/in/cert.pem": newPEM}
	cases := []struct {
		id, subject string
		args        []string
		files       map[string]string
		// the request the simulator must have answered 200
		method, path string
	}{
		{
			id: "kinds-cert-update", subject: jobs.SubjectCertificateUpdate,
			args:  []string{"certificate", "update", "--name", "rotate-me", "--pem", "/in/cert.pem", "--alias", "rotated", "--description", "rotated by the suite", "--env", "production,staging", "--jwk-update-action", "UPDATE", "--update-scope", "SAME_PROJECT"},
			files: pemFiles, method: http.MethodPut, path: "/apiops/projects/" + project + "/certificates/rotate-me/",
		},
		{
			id: "kinds-cert-create", subject: jobs.SubjectCertificateCreate,
			args:  []string{"certificate", "create", "--name", "brand-new", "--pem", "/in/cert.pem", "--alias", "new", "--description", "created by the suite", "--env", "production"},
			files: pemFiles, method: http.MethodPost, path: "/apiops/projects/" + project + "/certificates/",
		},
		{
			id: "kinds-cert-delete", subject: jobs.SubjectCertificateDelete,
			args:   []string{"certificate", "delete", "--name", "remove-me", "--jwk-delete-action", "NULLIFY"},
			method: http.MethodDelete, path: "/apiops/projects/" + project + "/certificates/remove-me/",
		},
		{
			id: "kinds-key-delete", subject: jobs.SubjectKeyDelete,
			args:   []string{"key", "delete", "--name", "old-key", "--jwk-delete-action", "DELETE"},
			method: http.MethodDelete, path: "/apiops/projects/" + project + "/keys/old-key/",
		},
		{
			id: "kinds-credential-delete", subject: jobs.SubjectCredentialDelete,
			args:   []string{"credential", "delete", "--name", "leaver"},
			method: http.MethodDelete, path: "/apiops/projects/" + project + "/credentials/leaver/",
		},
		{
			id: "kinds-publickey-delete", subject: jobs.SubjectCredentialPublicKeyDelete,
			args:   []string{"credential", "publickey", "delete", "--name", "keeper"},
			method: http.MethodDelete, path: "/apiops/projects/" + project + "/credentials/keeper/publicKey/",
		},
	}

	for _, tc := range cases {
		args := append(slices.Clone(tc.args), "--project", project, "--id", tc.id,
			"--nats-url", node.NetworkURL, "--wait", "--timeout", "60s")
		code, out := runEnqueue(t, nw, tc.files, args...)
		if code != 0 {
			t.Errorf("enqueue %s: exit status %d, want 0; output:\n%s", strings.Join(tc.args[:2], " "), code, out)
			continue
		}
		// --wait prints the job's result as one JSON line.
		var printed *jobs.Result
		for line := range strings.SplitSeq(out, "\n") {
			var r jobs.Result
			if json.Unmarshal([]byte(strings.TrimSpace(line)), &r) == nil && r.JobID == tc.id {
				printed = &r
			}
		}
		if printed == nil || printed.Status != jobs.StatusSucceeded || printed.Subject != tc.subject {
			t.Errorf("enqueue %s printed %+v, want a succeeded result of job %s on %s; output:\n%s", tc.subject, printed, tc.id, tc.subject, out)
		}
	}

	// The results stream: exactly one result per job, on the job's result subject, and
	// nothing else.
	waitFor(t, testTimeout, "a result for each of the six jobs", func() bool { return results.Jobs() >= len(cases) },
		func() string { return "results so far: " + strings.Join(sortedKeys(results.Summary().Results), ", ") })
	sum := results.Summary()
	if sum.Messages != len(cases) || len(sum.Duplicates) != 0 || len(sum.Bad) != 0 {
		t.Errorf("results stream holds %d messages (duplicates %v, malformed %q), want %d, one per job", sum.Messages, sum.Duplicates, sum.Bad, len(cases))
	}
	for _, tc := range cases {
		r, ok := sum.Results[tc.id]
		switch {
		case !ok:
			t.Errorf("job %s: no result on the results stream", tc.id)
		case r.Status != jobs.StatusSucceeded || r.Subject != tc.subject || r.ProjectName != project || r.Attempts != 1:
			t.Errorf("job %s: result %+v, want succeeded on the first attempt, subject %s, project %s", tc.id, r, tc.subject, project)
		case sum.Subjects[tc.id] != jobs.ResultSubject(tc.subject):
			t.Errorf("job %s: result published on %s, want %s", tc.id, sum.Subjects[tc.id], jobs.ResultSubject(tc.subject))
		case r.DeploymentResult == nil || !r.DeploymentResult.Success:
			t.Errorf("job %s: deployment result %+v, want a successful deployment", tc.id, r.DeploymentResult)
		}
	}

	// The simulator: one write per job, each answered 200, with the job's
	// parameters. Certificate writes are also read back (GET, the live
	// table of the result), which changes nothing.
	var calls []simCall
	for _, c := range simRequests(t, sim) {
		if c.Method != http.MethodGet {
			calls = append(calls, c)
		}
	}
	if len(calls) != len(cases) {
		t.Errorf("simulator received %d writes, want %d (one per job): %+v", len(calls), len(cases), calls)
	}
	for _, tc := range cases {
		var got []simCall
		for _, c := range calls {
			if c.Method == tc.method && c.Path == tc.path {
				got = append(got, c)
			}
		}
		if len(got) != 1 || got[0].Status != http.StatusOK {
			t.Errorf("job %s: simulator requests %s %s = %+v, want exactly one answered 200", tc.id, tc.method, tc.path, got)
			continue
		}
		c := got[0]
		switch tc.subject {
		case jobs.SubjectCertificateUpdate:
			if c.Form["alias"] != "rotated" || c.Form["environmentList"] != "production,staging" || c.Files["pemEncodedFile"] != newPEM ||
				first(c.Query["jwkUpdateAction"]) != "UPDATE" || first(c.Query["updateScope"]) != "SAME_PROJECT" {
				t.Errorf("certificate update sent form %v, query %v, pem sent: %t", c.Form, c.Query, c.Files["pemEncodedFile"] == newPEM)
			}
		case jobs.SubjectCertificateCreate:
			if c.Form["certificateName"] != "brand-new" || c.Files["pemEncodedFile"] != newPEM {
				t.Errorf("certificate create sent form %v, pem sent: %t", c.Form, c.Files["pemEncodedFile"] == newPEM)
			}
		case jobs.SubjectCertificateDelete:
			if first(c.Query["jwkDeleteAction"]) != "NULLIFY" {
				t.Errorf("certificate delete sent query %v, want jwkDeleteAction=NULLIFY", c.Query)
			}
		case jobs.SubjectKeyDelete:
			if first(c.Query["jwkDeleteAction"]) != "DELETE" {
				t.Errorf("key delete sent query %v, want jwkDeleteAction=DELETE", c.Query)
			}
		}
	}

	// The simulator's state after the six changes.
	st := simState(t, sim)
	if len(st.Projects) != 1 {
		t.Fatalf("simulator state has %d projects, want 1", len(st.Projects))
	}
	p := st.Projects[0]
	certs := map[string]int{}
	for _, c := range p.Certificates {
		certs[c.Name] = c.Revision
		if c.Name == "rotate-me" && (c.PEM != newPEM || c.Alias != "rotated") {
			t.Errorf("certificate rotate-me holds alias %q and the new PEM: %t; want the update applied", c.Alias, c.PEM == newPEM)
		}
	}
	if want := map[string]int{"rotate-me": 2, "brand-new": 1}; !maps.Equal(certs, want) {
		t.Errorf("certificates (name → revision) = %v, want %v", certs, want)
	}
	if len(p.Keys) != 0 {
		t.Errorf("keys = %v, want none", p.Keys)
	}
	if want := []seedCredential{{Username: "keeper", HasPublicKey: false}}; !slices.Equal(p.Credentials, want) {
		t.Errorf("credentials = %+v, want %+v", p.Credentials, want)
	}
	for res, n := range st.MaxInFlight {
		if n > 1 {
			t.Errorf("resource %s had %d requests in flight at once, want 1", res, n)
		}
	}

	measure(t, "jobs=%d results=%d duplicates=%d simulator_requests=%d duration=%s",
		len(cases), sum.Messages, len(sum.Duplicates), len(calls), time.Since(start).Round(time.Millisecond))
}

func mustPEM(t testing.TB, cn string) string {
	t.Helper()
	pem, err := selfsigned.PEM(cn)
	if err != nil {
		t.Fatal(err)
	}
	return pem
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
