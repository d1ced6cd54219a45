package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiops-worker/apiops-worker/executor"
)

func TestSeedExpiringServesCertificatesOfChosenValidityInEveryEnvironment(t *testing.T) {
	before := time.Now()
	base := start(t, "--token", "tok", "--seed-expiring", "5, 20,-2")
	defer http.DefaultClient.CloseIdleConnections()

	client, err := executor.New(executor.Config{BaseURL: base, Token: func() (string, error) { return "tok", nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	certs, err := client.Certificates(ctx, "MyProject")
	if err != nil {
		t.Fatal(err)
	}
	wantDays := map[string]int{"expires-in-5d": 5, "expires-in-20d": 20, "expired-2d-ago": -2}
	var names []string
	for _, c := range certs {
		names = append(names, c.Name)
		days, ok := wantDays[c.Name]
		if !ok {
			continue // the default seed's my-certificate
		}
		var envs []string
		for _, e := range c.Environments {
			envs = append(envs, e.EnvironmentName)
			want := before.Add(time.Duration(days) * 24 * time.Hour)
			if d := e.NotAfter.Sub(want); d < -time.Second || d > time.Minute {
				t.Errorf("%s in %s: notAfter %s, want about %s", c.Name, e.EnvironmentName, e.NotAfter, want)
			}
			if e.SubjectDN != "CN="+c.Name+".example.com" || e.SHA1Thumbprint == "" {
				t.Errorf("%s in %s: subject %q, thumbprint %q, want CN=%s.example.com and a thumbprint", c.Name, e.EnvironmentName, e.SubjectDN, e.SHA1Thumbprint, c.Name)
			}
		}
		slices.Sort(envs)
		if !slices.Equal(envs, []string{"production", "staging"}) {
			t.Errorf("%s served in %v, want every environment of MyProject", c.Name, envs)
		}
	}
	for name := range wantDays {
		if !slices.Contains(names, name) {
			t.Errorf("certificate %s not listed; listed %v", name, names)
		}
	}
}

func TestSeedExpiringRefusesWhatIsNotWholeDays(t *testing.T) {
	for _, v := range []string{"5d", "five", "5,,20", "1.5"} {
		var stderr strings.Builder
		err := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--seed-expiring", v}, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), "whole days left") {
			t.Errorf("--seed-expiring %q: err %v, want one asking for whole days", v, err)
		}
	}
}
