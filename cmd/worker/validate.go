package main

import (
	"errors"
	"fmt"

	"github.com/apiops-worker/apiops-worker/executor"
	"github.com/apiops-worker/apiops-worker/internal/setting"
	"github.com/apiops-worker/apiops-worker/natsconn"
	"github.com/apiops-worker/apiops-worker/stranded"
)

// validate checks the whole configuration once, each error naming the
// variable and the flag at fault (named).
func (c config) validate() error {
	var errs []error
	bad := func(env, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", c.named(env), fmt.Sprintf(format, a...)))
	}
	if !c.dev {
		if c.apinizerURL == "" {
			bad("APINIZER_URL", "required (or run with --dev for the simulator)")
		} else if err := executor.CheckBaseURL(c.apinizerURL, c.allowInsecureHTTP); err != nil {
			bad("APINIZER_URL", "%v (APINIZER_ALLOW_INSECURE_HTTP=true or --apinizer-allow-insecure-http allows plain http on an isolated test network)", err)
		}
		errs = append(errs, c.validateApinizerAuth()...)
		if c.samples {
			bad("WORKER_DEV_SAMPLES", "only with --dev")
		}
	}
	if err := natsconn.Rename(c.nats.Validate(), c.natsNames()); err != nil {
		errs = append(errs, err)
	}
	if (c.apinizerClientCert == "") != (c.apinizerClientKey == "") {
		bad("APINIZER_CLIENT_CERT", "goes together with %s", c.named("APINIZER_CLIENT_KEY"))
	}
	if c.strandedInterval != 0 {
		if err := (stranded.Config{Interval: c.strandedInterval}).WithDefaults().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.named("WORKER_STRANDED_CHECK_INTERVAL"), err))
		}
	}
	if len(c.inventory.Projects) > 0 {
		if err := c.inventory.WithDefaults().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("APINIZER_INVENTORY_* (--inventory-*), APINIZER_EXPIRY_WARNING: %w", err))
		}
	}
	for _, err := range []error{c.worker.Validate(), c.topo.Validate()} {
		setting.Each(err, func(err error) {
			var se *setting.Error
			if errors.As(err, &se) && c.settingVars[se.Field] != "" {
				err = fmt.Errorf("%s: must be %s, not %v", c.named(c.settingVars[se.Field]), se.Want, se.Value)
			}
			errs = append(errs, err)
		})
	}
	if c.retryBudget <= 0 {
		bad("WORKER_RETRY_BUDGET", "%s: want a positive duration", c.retryBudget)
	}
	if c.attemptTimeout <= 0 {
		bad("WORKER_ATTEMPT_TIMEOUT", "%s: want a positive duration", c.attemptTimeout)
	}
	// Rules across components stay here.
	if c.worker.JobTimeout > 0 && c.worker.JobTimeout < c.attemptTimeout {
		bad("WORKER_JOB_TIMEOUT", "%s: want at least the attempt timeout %s", c.worker.JobTimeout, c.attemptTimeout)
	}
	if c.lease < c.topo.AckWait {
		bad("WORKER_LEASE", "%s: want at least the ack wait %s", c.lease, c.topo.AckWait)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		bad("LOG_LEVEL", "%v", err)
	}
	if c.logFormat != "json" && c.logFormat != "text" {
		bad("LOG_FORMAT", "%q: want json or text", c.logFormat)
	}
	return errors.Join(errs...)
}
