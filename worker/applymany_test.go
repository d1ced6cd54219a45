package worker_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// TestManyAppliesWithMixedPEMsWriteOnlyChanges publishes 200 apply jobs for
// 50 certificates, each job three times, each certificate's four jobs
// switching between two PEMs in one of four patterns, to two workers. Every
// certificate must end serving its last job's PEM, and no write may upload
// the PEM a certificate already serves.
func TestManyAppliesWithMixedPEMsWriteOnlyChanges(t *testing.T) {
	t.Parallel()
	const (
		certs  = 50
		rounds = 4
	)
	patterns := [][rounds]int{{0, 0, 1, 1}, {0, 1, 0, 1}, {0, 1, 1, 0}, {1, 1, 1, 1}}
	b := setup(t)
	pems := make([][2]string, certs)
	for c := range pems {
		pems[c] = [2]string{newPEM(t), newPEM(t)}
	}
	name := func(c int) string { return fmt.Sprintf("cert-%02d", c) }
	res := b.watchResults(t)
	for r := range rounds {
		for c := range certs {
			j := newApply(b, project, fmt.Sprintf("apply-%02d-%d", c, r), pems[c][patterns[c%4][r]])
			j.CertificateName = name(c)
			for range 3 {
				b.publish(t, j)
			}
		}
	}
	b.startWorker(t, workerOpts{})
	b.startWorker(t, workerOpts{})
	got := res.next(t, certs*rounds, time.Minute)

	statuses := map[jobs.Status]int{}
	for _, r := range got {
		statuses[r.Status]++
	}
	if statuses[jobs.StatusFailed] != 0 || statuses[jobs.StatusPartial] != 0 || statuses[jobs.StatusUnchanged] == 0 {
		t.Errorf("statuses %v; want none failed or partial, and some unchanged", statuses)
	}

	// Writes to one certificate are made one at a time, under its
	// resource lock, so the log's order is the order they took effect.
	live := map[string]string{}
	for _, r := range b.sim.Requests() {
		if r.Method == http.MethodGet || r.Status != http.StatusOK {
			continue
		}
		cert := r.Form["certificateName"]
		if r.Method == http.MethodPut {
			cert = r.Path[len("/apiops/projects/"+project+"/certificates/") : len(r.Path)-1]
		}
		uploaded := r.Files["pemEncodedFile"]
		if uploaded == live[cert] {
			t.Errorf("%s %s uploaded the PEM it already served", r.Method, cert)
		}
		live[cert] = uploaded
	}
	for c := range certs {
		want := pems[c][patterns[c%4][rounds-1]]
		cert, ok := b.sim.Certificate(project, name(c))
		if !ok || cert.PEM != want || cert.Served != nil {
			t.Errorf("%s does not serve its last job's PEM everywhere (exists %v)", name(c), ok)
		}
		changes := 0
		for r := range rounds {
			if r == 0 || patterns[c%4][r] != patterns[c%4][r-1] {
				changes++
			}
		}
		if n := b.sim.Applied()["certificate/"+project+"/"+name(c)]; n > changes || n == 0 {
			t.Errorf("%s written %d times, want 1 to %d (its PEM changes)", name(c), n, changes)
		}
	}
}
