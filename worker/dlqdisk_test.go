package worker_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
)

// TestRedactionDeadLetterOfARefusedPrivateKeyKeepsNoKeyOnDisk publishes a
// certificate.update whose PEM file carries a private key after the
// certificate, and searches the dead-letter stream's files on disk, not only
// its messages, for the key: the job fails with invalid_field, its dead
// letter keeps the reason and the certificate, and the key is nowhere.
func TestRedactionDeadLetterOfARefusedPrivateKeyKeepsNoKeyOnDisk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{})

	const keyLine = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETsecretSECRET"
	certLine := strings.Split(b.pem, "\n")[1]
	msg := nats.NewMsg(jobs.SubjectCertificateUpdate)
	msg.Data = []byte(mustJSON(t, map[string]any{
		"jobId": "with-a-key", "projectName": project, "certificateName": "c", "alias": "a", "certificateDescription": "d",
		"environmentList": []string{"production"},
		"pemEncodedFile":  b.pem + "-----BEGIN PRIVATE KEY-----\n" + keyLine + "\n-----END PRIVATE KEY-----\n",
	}))
	msg.Header.Set(nats.MsgIdHdr, "with-a-key")
	if _, err := b.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}

	r := rs.next(t, 1, 20*time.Second)["with-a-key"]
	if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "invalid_field" {
		t.Fatalf("result %s %+v, want failed with invalid_field", r.Status, r.Error)
	}
	poll.Until(t, 10*time.Second, "the dead letter", func() bool { return b.streamMsgs(t, streams.DeadLetters) == 1 })
	recs := deadLetters(t, b)
	if len(recs) != 1 {
		t.Fatalf("%d dead letters, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Reason != dlq.ReasonInvalid || rec.Error == nil || rec.Error.Code != "invalid_field" || !rec.Redacted {
		t.Errorf("dead letter: reason %s, error %+v, redacted %t; want %s, invalid_field, redacted", rec.Reason, rec.Error, rec.Redacted, dlq.ReasonInvalid)
	}
	if !strings.Contains(rec.Payload, dlq.RedactedKey) || !strings.Contains(rec.Payload, certLine) {
		t.Errorf("payload %s: want the certificate kept and the key replaced by %q", rec.Payload, dlq.RedactedKey)
	}

	// The file store writes asynchronously: wait until the dead letter is on
	// disk (the certificate, kept, shows it is), then look for the key.
	dir := b.stack.Server.StoreDir()
	var onDisk []byte
	poll.Until(t, 10*time.Second, "the dead letter's certificate in the DLQ stream's files", func() bool {
		onDisk = streamFiles(t, dir, streams.DeadLetters)
		return bytes.Contains(onDisk, []byte(certLine))
	})
	if bytes.Contains(onDisk, []byte(keyLine)) {
		t.Errorf("LEAK: the private key is in the %s stream's files on disk", streams.DeadLetters)
	}
}

// streamFiles returns the contents of every file of the named stream under
// the JetStream store directory dir.
func streamFiles(t *testing.T, dir, stream string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, string(filepath.Separator)+stream+string(filepath.Separator)) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		all = append(all, data...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatalf("no files of stream %s under %s", stream, dir)
	}
	return all
}
