package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// hostileJob is one message of the hostile corpus: what a broken or
// malicious producer could publish on a job subject.
type hostileJob struct {
	name    string
	subject string
	body    []byte
	code    string // the failed result's error code
}

func hostileCorpus(t *testing.T, pem string) []hostileJob {
	t.Helper()
	cert := func(fields map[string]any) []byte {
		m := map[string]any{
			"projectName": project, "certificateName": "c", "alias": "a", "certificateDescription": "d",
			"environmentList": []string{"production"}, "pemEncodedFile": pem,
		}
		for k, v := range fields {
			m[k] = v
		}
		return []byte(mustJSON(t, m))
	}
	key := func(name string) []byte {
		return []byte(mustJSON(t, map[string]any{"projectName": project, "keyName": name}))
	}
	envs := make([]string, 5000)
	for i := range envs {
		envs[i] = fmt.Sprintf("env-%d", i)
	}
	privateKey := pem + "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
	rsaKey := "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n"
	nested := `{"projectName":"` + project + `","keyName":"k","pad":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`
	tenMB := `{"projectName":"` + project + `","keyName":"k","pad":"` + strings.Repeat("x", 10<<20) + `"}`
	return []hostileJob{
		{"path traversal in a certificate name", jobs.SubjectCertificateDelete, []byte(`{"projectName":"` + project + `","certificateName":"../x"}`), "invalid_field"},
		{"path traversal in a project name", jobs.SubjectKeyDelete, []byte(`{"projectName":"../../admin","keyName":"k"}`), "invalid_field"},
		{"a slash in a key name", jobs.SubjectKeyDelete, key("a/b"), "invalid_field"},
		{"a backslash in a key name", jobs.SubjectKeyDelete, key(`a\b`), "invalid_field"},
		{"an encoded slash in a username", jobs.SubjectCredentialDelete, []byte(`{"projectName":"` + project + `","username":"a%2Fb"}`), "invalid_field"},
		{"an encoded dot-dot in a key name", jobs.SubjectKeyDelete, key("%2e%2e"), "invalid_field"},
		{"a JSON-escaped slash in a username", jobs.SubjectCredentialPublicKeyDelete, []byte(`{"projectName":"` + project + `","username":"a\u002fb"}`), "invalid_field"},
		{"a NUL byte in a key name", jobs.SubjectKeyDelete, key("k\x00ey"), "invalid_field"},
		{"a NUL byte in the body's jobId", jobs.SubjectKeyDelete, []byte(mustJSON(t, map[string]any{"jobId": "id\x00x", "projectName": project, "keyName": "k"})), "job_id_mismatch"},
		{"a query and fragment in a name", jobs.SubjectKeyDelete, key("k?jwkDeleteAction=DELETE#x"), "invalid_field"},
		{"a 10 MB body", jobs.SubjectKeyDelete, []byte(tenMB), "job_too_large"},
		{"10,001-deep nested JSON", jobs.SubjectKeyDelete, []byte(nested), "malformed_job"},
		{"a top-level array 10,000 deep", jobs.SubjectKeyDelete, []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)), "malformed_job"},
		{"a PEM file with a PKCS#8 private key after the certificate", jobs.SubjectCertificateCreate, cert(map[string]any{"pemEncodedFile": privateKey}), "invalid_field"},
		{"a PEM file that is only an RSA private key", jobs.SubjectCertificateUpdate, cert(map[string]any{"pemEncodedFile": rsaKey}), "invalid_field"},
		{"a PEM file of 17 certificates", jobs.SubjectCertificateCreate, cert(map[string]any{"pemEncodedFile": strings.Repeat(pem, jobs.MaxPEMBlocks+1)}), "invalid_field"},
		{"5,000 environments", jobs.SubjectCertificateCreate, cert(map[string]any{"environmentList": envs}), "invalid_field"},
		{"an environment with a comma", jobs.SubjectCertificateCreate, cert(map[string]any{"environmentList": []string{"production,staging"}}), "invalid_field"},
		{"a 256-byte certificate name", jobs.SubjectCertificateDelete, []byte(`{"projectName":"` + project + `","certificateName":"` + strings.Repeat("n", jobs.MaxNameSize+1) + `"}`), "invalid_field"},
		{"invalid UTF-8", jobs.SubjectCredentialDelete, []byte("{\"projectName\":\"P\",\"username\":\"\xff\xfe\"}"), "malformed_job"},
		{"not JSON", jobs.SubjectKeyDelete, []byte("\x00\x01\x02 binary"), "malformed_job"},
		{"a missing key name", jobs.SubjectKeyDelete, []byte(`{"projectName":"` + project + `"}`), "missing_field"},
		{"a field of the wrong type", jobs.SubjectKeyDelete, []byte(`{"projectName":"` + project + `","keyName":["k"]}`), "invalid_field"},
		{"an unknown subject", "apiops.certificate.rename", []byte(`{"projectName":"` + project + `","certificateName":"c"}`), "unknown_subject"},
	}
}

func TestHostileJobsFailOnceEachWithZeroApinizerCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *server.Options) { o.MaxPayload = 16 << 20 })
	b.sim.AddKey(project, "after-the-corpus")
	rs := b.watchResults(t)
	_, reg := b.startWorker(t, workerOpts{concurrency: 4})

	corpus := hostileCorpus(t, b.pem)
	idOf := func(i int) string { return fmt.Sprintf("hostile-%02d", i) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, h := range corpus {
		msg := nats.NewMsg(h.subject)
		msg.Data = h.body
		msg.Header.Set(nats.MsgIdHdr, idOf(i))
		if _, err := b.js.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish %s: %v", h.name, err)
		}
	}
	got := rs.next(t, len(corpus), 60*time.Second)

	for i, h := range corpus {
		t.Run(h.name+" fails with "+h.code, func(t *testing.T) {
			r, ok := got[idOf(i)]
			if !ok {
				t.Fatal("no result")
			}
			if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != h.code || r.Error.Retryable || r.Attempts != 0 {
				t.Errorf("result %s after %d attempts, error %+v; want failed with %s, not retryable, no attempt", r.Status, r.Attempts, r.Error, h.code)
			}
			if r.Error != nil {
				// A hostile value must not inflate or break the result.
				if len(r.Error.Message) > 512 {
					t.Errorf("error message is %d bytes, want a short one", len(r.Error.Message))
				}
				if strings.IndexFunc(r.Error.Message, unicode.IsControl) >= 0 {
					t.Errorf("error message %q holds a control character", r.Error.Message)
				}
				if strings.Contains(r.Error.Message, "PRIVATE KEY") && !strings.Contains(r.Error.Message, "private key") {
					t.Errorf("error message quotes the PEM file: %q", r.Error.Message)
				}
			}
		})
	}

	// The worker is still healthy: a valid job after the corpus succeeds.
	b.publish(t, &jobs.KeyDelete{JobID: "after-the-corpus", ProjectName: project, KeyName: "after-the-corpus"})
	if r := rs.next(t, 1, 20*time.Second)["after-the-corpus"]; r.Status != jobs.StatusSucceeded {
		t.Errorf("the valid job after the corpus: %s %+v, want succeeded", r.Status, r.Error)
	}
	reqs := b.sim.Requests()
	if len(reqs) != 1 || !strings.Contains(reqs[0].Path, "/keys/after-the-corpus/") {
		paths := make([]string, len(reqs))
		for i, r := range reqs {
			paths[i] = r.Method + " " + r.Path
		}
		t.Errorf("the simulator received %v; want only the valid job's call (zero calls for the corpus)", paths)
	}

	// Exactly one result each: nothing more arrived after the valid job.
	if n := b.streamMsgs(t, streams.Results); n != uint64(len(corpus)+1) {
		t.Errorf("results stream holds %d results, want %d (one per hostile job plus the valid one)", n, len(corpus)+1)
	}
	// Dead-lettered once each, as invalid jobs.
	recs := deadLetters(t, b)
	perID := map[string]int{}
	for _, d := range recs {
		perID[d.JobID]++
		if d.Reason != dlq.ReasonInvalid {
			t.Errorf("dead letter %s: reason %s, want %s", d.JobID, d.Reason, dlq.ReasonInvalid)
		}
		if len(d.Payload) > dlq.MaxPayload {
			t.Errorf("dead letter %s stores a %d-byte payload, over the %d cap", d.JobID, len(d.Payload), dlq.MaxPayload)
		}
	}
	for i, h := range corpus {
		if n := perID[idOf(i)]; n != 1 {
			t.Errorf("%s: dead-lettered %d times, want once", h.name, n)
		}
	}
	if len(recs) != len(corpus) {
		t.Errorf("%d dead letters, want %d", len(recs), len(corpus))
	}
	// Terminations are sent, not waited for: the server removes the
	// messages a moment after the dead letters are stored.
	poll.Until(t, 5*time.Second, "the jobs stream to be empty: every hostile job settled, none looping", func() bool {
		return b.streamMsgs(t, streams.Jobs) == 0
	})
	if v := testutil.ToFloat64(counter(t, reg, "apiops_handler_panics_total")); v != 0 {
		t.Errorf("apiops_handler_panics_total = %v, want 0", v)
	}
}
