package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiops-worker/apiops-worker/dlq"
	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/capture"
	"github.com/apiops-worker/apiops-worker/internal/poll"
	"github.com/apiops-worker/apiops-worker/internal/workertest"
	"github.com/apiops-worker/apiops-worker/jobs"
	"github.com/apiops-worker/apiops-worker/streams"
	"github.com/apiops-worker/apiops-worker/worker"
)

// sealFor encrypts clear to recipient, armoured, as a producer does.
func sealFor(t testing.TB, recipient age.Recipient, clear string) string {
	t.Helper()
	sealed, err := jobs.Seal(clear, recipient)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func ageIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestNewKindsAreOrderedWithADeleteOfTheSameResource publishes, for a
// credential, a key and a JWK, a change followed by a delete of the same
// resource, with slow answers and several workers' worth of concurrency:
// each pair must reach Apinizer one at a time, and never the change after
// the delete. A credential's public key and certificate are the
// credential's resource.
func TestNewKindsAreOrderedWithADeleteOfTheSameResource(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := ageIdentity(t)
	b.sim.AddCertificate(project, "cert", b.pem)
	b.sim.AddKey(project, "pub")
	for _, u := range []string{"u-pub", "u-cert", "u-certdel"} {
		b.sim.AddCredential(project, u, true)
	}
	b.sim.SetLatency(30 * time.Millisecond)
	rs := b.watchResults(t)
	b.startWorker(t, workerOpts{concurrency: 8, executor: func(c *executor.Config) { c.Identities = []age.Identity{id} }})
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	pairs := [][2]jobs.Job{
		{&jobs.CredentialPublicKeySet{JobID: "o-pub-set", ProjectName: project, Username: "u-pub", KeyName: "pub"},
			&jobs.CredentialDelete{JobID: "o-pub-del", ProjectName: project, Username: "u-pub"}},
		{&jobs.CredentialCertificateSet{JobID: "o-cert-set", ProjectName: project, Username: "u-cert", CertificateName: "cert"},
			&jobs.CredentialDelete{JobID: "o-cert-del", ProjectName: project, Username: "u-cert"}},
		{&jobs.CredentialCertificateSet{JobID: "o-certdel-set", ProjectName: project, Username: "u-certdel", CertificateName: "cert"},
			&jobs.CredentialCertificateDelete{JobID: "o-certdel-del", ProjectName: project, Username: "u-certdel"}},
		{&jobs.KeyCreate{JobID: "o-key-create", ProjectName: project, KeyName: "k", KeyFields: jobs.KeyFields{KeyType: jobs.KeySecret, Algorithm: jobs.AlgorithmAES,
			CryptoKeyInfoEnvironmentList: []jobs.KeyEnvironment{{EnvironmentName: "production", EncryptedContent: sealFor(t, id.Recipient(), secret)}}}},
			&jobs.KeyDelete{JobID: "o-key-del", ProjectName: project, KeyName: "k"}},
		{&jobs.KeyUpdate{JobID: "o-pubkey-update", ProjectName: project, KeyName: "pub", KeyFields: jobs.KeyFields{KeyType: jobs.KeyPublic, Description: "rotated"}},
			&jobs.KeyDelete{JobID: "o-pubkey-del", ProjectName: project, KeyName: "pub"}},
		{&jobs.JWKParse{JobID: "o-jwk-parse", ProjectName: project, JWKName: "j", CertificateName: "cert", EnvironmentName: "production", UseType: jobs.JWKSignature, Algorithm: "ES256"},
			&jobs.JWKDelete{JobID: "o-jwk-del", ProjectName: project, JWKName: "j"}},
	}
	var all []jobs.Job
	for _, p := range pairs {
		all = append(all, p[0], p[1])
	}
	b.publish(t, all...)
	got := rs.next(t, len(all), 60*time.Second)
	// Jobs on one resource run one at a time, and a job older than the
	// last one applied to its resource ends superseded (README, "How it
	// works"). A delete that takes the resource before the change it
	// follows either applies (the change is then superseded) or, when it
	// deletes what the change would create, fails not_found, applying
	// nothing, and the change runs after it.
	var reqs []apinizertest.Request
	for _, r := range b.sim.Requests() {
		if r.Resource != "" {
			reqs = append(reqs, r)
		}
	}
	for _, p := range pairs {
		res := p[0].Resource()
		if res != p[1].Resource() {
			t.Fatalf("%s and %s name different resources", p[0].ID(), p[1].ID())
		}
		key := string(res.Kind) + "/" + res.Project + "/" + res.Name
		var methods []string
		var lastEnd time.Time
		for _, r := range reqs {
			if r.Resource != key {
				continue
			}
			if !lastEnd.IsZero() && r.Start.Before(lastEnd) {
				t.Errorf("%s: a request began before the previous one ended", key)
			}
			methods = append(methods, r.Method)
			lastEnd = r.End
		}
		change, del := got[p[0].ID()], got[p[1].ID()]
		switch {
		case change.Status == jobs.StatusSucceeded && del.Status == jobs.StatusSucceeded:
			if len(methods) != 2 || methods[1] != "DELETE" {
				t.Errorf("%s: requests %v, want the change, then the DELETE", key, methods)
			}
		case change.Status == jobs.StatusSuperseded && del.Status == jobs.StatusSucceeded:
			if change.SupersededBy != p[1].ID() || len(methods) != 1 {
				t.Errorf("%s: %s superseded by %q after requests %v, want superseded by %s with the DELETE alone", key, p[0].ID(), change.SupersededBy, methods, p[1].ID())
			}
		case change.Status == jobs.StatusSucceeded && del.Error != nil && del.Error.Code == executor.CodeNotFound:
			if len(methods) != 2 || methods[0] != "DELETE" {
				t.Errorf("%s: the delete failed not_found after requests %v, want it only when it ran first", key, methods)
			}
			t.Logf("%s: the delete ran first, found nothing to delete, and the change applied after it", key)
		default:
			t.Errorf("%s: %s %s %+v and %s %s %+v: not an outcome of per-resource order", key, p[0].ID(), change.Status, change.Error, p[1].ID(), del.Status, del.Error)
		}
	}
	for res, n := range b.sim.MaxInFlight() {
		if n > 1 {
			t.Errorf("%s had %d requests in flight at once, want at most 1", res, n)
		}
	}
	if c, ok := b.sim.Credential(project, "u-certdel"); !ok || c.Certificate != "" {
		t.Errorf("u-certdel = %+v, %v; want it kept, without a certificate", c, ok)
	}
	if b.sim.KeyExists(project, "pub") {
		t.Error("key pub outlived its delete")
	}
	if exists, outran := b.sim.KeyExists(project, "k"), got["o-key-del"].Status == jobs.StatusFailed; exists != outran {
		t.Errorf("key k exists: %t; want it only if its delete ran first and failed", exists)
	}
}

// TestRedactionOfKeyMaterial runs a workload of the new kinds with
// recognisable key material and identity (successes, a 503 echoing the
// material, material for another recipient, material sent in clear, and
// clear material under a misspelled name), then searches every log line,
// result, stored stream message (dead letters, ledger), ledger value,
// metric and error string for the material and the identity.
func TestRedactionOfKeyMaterial(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := ageIdentity(t)
	material := base64.StdEncoding.EncodeToString([]byte("RECOGNISABLE-KEY-MATERIAL-4e1f"))
	rawMaterial := "RECOGNISABLE-KEY-MATERIAL-4e1f"
	b.sim.AddCertificate(project, "cert", b.pem)
	b.sim.AddKey(project, "pub")
	b.sim.AddCredential(project, "user", true)
	b.sim.AddCredential(project, "cert-user", false)
	b.sim.AddFault(apinizertest.Fault{Method: "PUT", PathPrefix: "/apiops/projects/MyProject/keys/", Times: 1,
		Reply: apinizertest.FailureReply(503, "upstream choked on "+material)})

	logs := &capture.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec, reg := startKeyRedactionWorker(t, b, log, id)
	rs := b.watchResults(t)

	sealed := sealFor(t, id.Recipient(), material)
	env := func(enc string) []jobs.KeyEnvironment {
		return []jobs.KeyEnvironment{{EnvironmentName: "production", EncryptedContent: enc, Alias: "a"}}
	}
	valid := []jobs.Job{
		&jobs.KeyCreate{JobID: "k-secret", ProjectName: project, KeyName: "secret", KeyFields: jobs.KeyFields{KeyType: jobs.KeySecret, Algorithm: jobs.AlgorithmAES, CryptoKeyInfoEnvironmentList: env(sealed)}},
		&jobs.KeyCreate{JobID: "k-private", ProjectName: project, KeyName: "private", KeyFields: jobs.KeyFields{KeyType: jobs.KeyPrivate, CryptoKeyInfoEnvironmentList: env(sealed)}},
		&jobs.KeyCreate{JobID: "k-stranger", ProjectName: project, KeyName: "stranger", KeyFields: jobs.KeyFields{KeyType: jobs.KeySecret, Algorithm: jobs.AlgorithmAES,
			CryptoKeyInfoEnvironmentList: env(sealFor(t, ageIdentity(t).Recipient(), material))}},
		&jobs.KeyCreate{JobID: "k-taken", ProjectName: project, KeyName: "pub", KeyFields: jobs.KeyFields{KeyType: jobs.KeyPrivate, CryptoKeyInfoEnvironmentList: env(sealed)}},
		&jobs.CredentialPublicKeySet{JobID: "k-assign", ProjectName: project, Username: "user", KeyName: "pub"},
		&jobs.CredentialCertificateSet{JobID: "k-cert", ProjectName: project, Username: "cert-user", CertificateName: "cert"},
		&jobs.JWKParse{JobID: "k-jwk", ProjectName: project, JWKName: "j", CertificateName: "cert", EnvironmentName: "production", UseType: jobs.JWKSignature, Algorithm: "ES256"},
	}
	// The second phase changes what the first made: jobs on one resource
	// are never reordered, but an older one can end superseded.
	second := []jobs.Job{
		&jobs.KeyUpdate{JobID: "k-update", ProjectName: project, KeyName: "secret", KeyFields: jobs.KeyFields{KeyType: jobs.KeySecret, CryptoKeyInfoEnvironmentList: env(sealed)}},
		&jobs.CredentialCertificateDelete{JobID: "k-cert-del", ProjectName: project, Username: "cert-user"},
		&jobs.JWKDelete{JobID: "k-jwk-del", ProjectName: project, JWKName: "j"},
	}
	b.publish(t, valid...)
	clearBodies := map[string]string{
		"k-clear":      `{"jobId":"k-clear","projectName":"MyProject","keyName":"c","keyType":"SECRET_KEY","algorithm":"AES","cryptoKeyInfoEnvironmentList":[{"environmentName":"production","content":"` + material + `"}]}`,
		"k-misspelled": `{"jobId":"k-misspelled","projectName":"MyProject","keyName":"c","keyType":"PRIVATE_KEY","cryptoKeyInfoEnvironmentList":[{"environmentName":"production","Content":"` + material + `"}]}`,
	}
	for jobID, body := range clearBodies {
		m := nats.NewMsg(jobs.SubjectKeyCreate)
		m.Data = []byte(body)
		m.Header.Set(nats.MsgIdHdr, jobID)
		if _, err := b.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}

	got := rs.next(t, len(valid)+len(clearBodies), 60*time.Second)
	b.publish(t, second...)
	maps.Copy(got, rs.next(t, len(second), 60*time.Second))
	want := map[string]string{ // job id -> "succeeded" or the error code
		"k-secret": "succeeded", "k-private": "succeeded", "k-update": "succeeded", "k-stranger": executor.CodeUndecryptable,
		"k-taken": executor.CodeAlreadyExists, "k-assign": "succeeded", "k-cert": "succeeded", "k-cert-del": "succeeded",
		"k-jwk": "succeeded", "k-jwk-del": "succeeded", "k-clear": "secret_in_clear", "k-misspelled": "secret_in_clear",
	}
	for jobID, w := range want {
		r := got[jobID]
		g := string(r.Status)
		if r.Error != nil {
			g = r.Error.Code
		}
		if g != w {
			t.Errorf("%s: %s %+v, want %s (the workload did not run as designed)", jobID, r.Status, r.Error, w)
		}
	}
	if r := got["k-update"]; r.Attempts != 2 {
		t.Errorf("k-update: %d attempts, want 2 (a 503 echoing the material, then success)", r.Attempts)
	}
	if r := got["k-clear"]; r.Error == nil || !strings.Contains(r.Error.Message, "purge") {
		t.Errorf("k-clear: %+v, want a message telling the operator to purge the stream", r.Error)
	}
	poll.Until(t, 10*time.Second, "four dead letters", func() bool { return b.streamMsgs(t, streams.DeadLetters) == 4 })

	// Not vacuous: the worker decrypted the material and Apinizer got it.
	if k, ok := b.sim.Key(project, "secret"); !ok || k.Environments[0].Content != material {
		t.Fatalf("key secret = %+v, %v; want it to hold the decrypted material", k, ok)
	}

	secrets := map[string]string{"the key material": material, "the decoded key material": rawMaterial, "the age identity": id.String()}
	sealedInDLQ := 0
	for _, a := range collectArtefacts(t, b.js, logs, reg, rec) {
		for what, s := range secrets {
			if strings.Contains(a.text, s) {
				t.Errorf("LEAK: %s appears in %s", what, a.where)
			}
		}
		if a.dlq && strings.Contains(a.text, "BEGIN AGE ENCRYPTED FILE") {
			sealedInDLQ++
		}
		if a.dlq && strings.Contains(a.text, `"k-clear"`) {
			var r struct {
				Redacted bool   `json:"redacted"`
				Payload  string `json:"payload"`
			}
			if json.Unmarshal([]byte(a.text), &r) == nil && (!r.Redacted || r.Payload != "") {
				t.Errorf("%s: the clear job's dead letter does not say its payload was withheld", a.where)
			}
		}
	}
	// k-stranger and k-taken keep their encrypted form for replay, stored
	// and as dlq.List decodes it.
	if sealedInDLQ != 4 {
		t.Errorf("the encrypted material is in %d dead letters, want 4 (2 jobs kept for replay, stored and listed)", sealedInDLQ)
	}
}

// startKeyRedactionWorker runs a worker holding id (after another
// identity: a rotation), logging to log, with every executor error
// recorded.
func startKeyRedactionWorker(t *testing.T, b *bundle, log *slog.Logger, id *age.X25519Identity) (*errorRecorder, *prometheus.Registry) {
	t.Helper()
	rec := &errorRecorder{}
	_, reg := b.stack.StartWorker(t, workertest.Worker{
		Config: worker.Config{
			Concurrency:     4,
			RedeliveryDelay: func(uint64) time.Duration { return 100 * time.Millisecond },
			Logger:          log,
			ProbeInterval:   20 * time.Millisecond,
		},
		Lease:    2 * b.topo.AckWait,
		Executor: func(c *executor.Config) { c.Identities = []age.Identity{ageIdentity(t), id} },
		Wrap: func(e worker.Executor) worker.Executor {
			rec.Executor = e
			return rec
		},
	})
	return rec, reg
}

// TestAnUndecryptableJobIsReplayedOnceTheWorkerHoldsItsIdentity: material
// encrypted to a recipient the worker cannot open fails undecryptable and
// is dead-lettered encrypted; replayed after the worker gains the identity,
// it succeeds.
func TestAnUndecryptableJobIsReplayedOnceTheWorkerHoldsItsIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	old, next := ageIdentity(t), ageIdentity(t)
	material := base64.StdEncoding.EncodeToString([]byte("replayed-key-material"))
	rs := b.watchResults(t)
	stop, _ := b.startWorker(t, workerOpts{executor: func(c *executor.Config) { c.Identities = []age.Identity{old} }})
	b.publish(t, &jobs.KeyCreate{JobID: "early", ProjectName: project, KeyName: "k", KeyFields: jobs.KeyFields{KeyType: jobs.KeySecret, Algorithm: jobs.AlgorithmAES,
		CryptoKeyInfoEnvironmentList: []jobs.KeyEnvironment{{EnvironmentName: "production", EncryptedContent: sealFor(t, next.Recipient(), material)}}}})
	if r := rs.next(t, 1, 30*time.Second)["early"]; r.Error == nil || r.Error.Code != executor.CodeUndecryptable {
		t.Fatalf("early: %+v, want undecryptable", r)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []dlq.Record
	poll.Until(t, 10*time.Second, "the dead letter", func() bool {
		recs, _ = dlq.List(ctx, b.js, "", 10)
		return len(recs) == 1
	})
	if !strings.Contains(recs[0].Payload, "BEGIN AGE ENCRYPTED FILE") || strings.Contains(recs[0].Payload, material) {
		t.Fatalf("the dead letter holds %q, want the encrypted job only", recs[0].Payload)
	}
	b.startWorker(t, workerOpts{executor: func(c *executor.Config) { c.Identities = []age.Identity{old, next} }})
	id, err := dlq.Replay(ctx, b.js, recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if r := rs.next(t, 1, 30*time.Second)[id]; r.Status != jobs.StatusSucceeded {
		t.Fatalf("replay %s: %+v, want succeeded", id, r)
	}
	if k, ok := b.sim.Key(project, "k"); !ok || k.Environments[0].Content != material {
		t.Errorf("key k = %+v, %v; want the decrypted material", k, ok)
	}
}
