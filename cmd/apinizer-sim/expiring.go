package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apiops-worker/apiops-worker/executor/apinizertest"
	"github.com/apiops-worker/apiops-worker/internal/selfsigned"
)

// parseExpiring reads --seed-expiring: comma-separated whole days left,
// such as "5,20,400" or "-2" for a certificate expired two days ago.
func parseExpiring(v string) ([]int, error) {
	if v == "" {
		return nil, nil
	}
	var days []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--seed-expiring %q: want comma-separated whole days left, such as 5,20,400 (negative: expired)", v)
		}
		days = append(days, n)
	}
	return days, nil
}

// expiringName names the certificate of --seed-expiring that has days left.
func expiringName(days int) string {
	if days < 0 {
		return fmt.Sprintf("expired-%dd-ago", -days)
	}
	return fmt.Sprintf("expires-in-%dd", days)
}

// seedExpiring deploys, to every environment of project, one certificate
// per entry of days, valid from a year before now until days after it, so
// that the certificate inventory has chosen dates to report.
func seedExpiring(sim *apinizertest.Simulator, project apinizertest.ProjectState, days []int, now time.Time) error {
	for _, d := range days {
		name := expiringName(d)
		pem, err := selfsigned.PEMValid(name+".example.com", now.Add(-365*24*time.Hour), now.Add(time.Duration(d)*24*time.Hour))
		if err != nil {
			return fmt.Errorf("--seed-expiring: %w", err)
		}
		for _, env := range project.Environments {
			sim.DeployCertificate(project.Name, name, env, pem)
		}
	}
	return nil
}
