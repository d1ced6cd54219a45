// Package inventory watches the certificates Apinizer serves: every
// Interval it lists the certificates of the configured projects, exports
// their validity as Prometheus series and publishes an event per
// certificate, environment and thumbprint per day while one is about to
// expire. One replica at a time does it, under a lease in a JetStream
// key-value bucket; the others export and publish nothing. It knows
// nothing of jobs or HTTP handlers: cmd/worker starts Run.
package inventory

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/apiops-worker/apiops-worker/lease"
)

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("inventory: invalid config")

// AllProjects in Projects watches every project the token can read, listed
// again each round.
const AllProjects = "*"

// Config holds the inventory's settings. The zero value of every field but
// Projects means its default.
type Config struct {
	// Projects whose certificates are watched (APINIZER_INVENTORY_PROJECTS),
	// or just AllProjects. Required: an empty list means no inventory, and
	// the caller should not start one.
	Projects []string
	// Interval between rounds (APINIZER_INVENTORY_INTERVAL). Default 10m.
	Interval time.Duration
	// RequestRate bounds the inventory's Apinizer calls per second, so that
	// it never crowds out jobs. Default 5.
	RequestRate rate.Limit
	// MaxSeries bounds the certificate/environment pairs exported
	// (APINIZER_INVENTORY_MAX_SERIES); beyond it the soonest-expiring are
	// kept. Default 5000.
	MaxSeries int
	// ExpiryWarning is how close notAfter must be for an expiry event
	// (APINIZER_EXPIRY_WARNING). Default 720h.
	ExpiryWarning time.Duration
	// Lease bounds how long the replicas go without an inventory when the
	// one running it dies: another takes over within Lease. The holder
	// renews it every Lease/4. Default 30s.
	Lease time.Duration
	// Holder names this replica in the lease. Default the host name with a
	// random suffix; it must differ between replicas.
	Holder string
	// Now is the clock certificate dates and event days are read against.
	// Default time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = 10 * time.Minute
	}
	if c.RequestRate == 0 {
		c.RequestRate = 5
	}
	if c.MaxSeries == 0 {
		c.MaxSeries = 5000
	}
	if c.ExpiryWarning == 0 {
		c.ExpiryWarning = 720 * time.Hour
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.Holder == "" {
		c.Holder = lease.DefaultHolder()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first setting out of range.
func (c Config) Validate() error {
	switch {
	case len(c.Projects) == 0:
		return fmt.Errorf("%w: no projects: name them, or %q for every project", ErrInvalidConfig, AllProjects)
	case len(c.Projects) > 1 && slices.Contains(c.Projects, AllProjects):
		return fmt.Errorf("%w: projects %q: %q stands alone", ErrInvalidConfig, strings.Join(c.Projects, ","), AllProjects)
	case slices.ContainsFunc(c.Projects, func(p string) bool { return strings.TrimSpace(p) != p || p == "" }):
		return fmt.Errorf("%w: projects %q: a name is empty or has surrounding spaces", ErrInvalidConfig, strings.Join(c.Projects, ","))
	case c.Interval < time.Second:
		return fmt.Errorf("%w: interval %s: want 1s or more", ErrInvalidConfig, c.Interval)
	case c.RequestRate <= 0 || c.RequestRate == rate.Inf:
		return fmt.Errorf("%w: request rate %v: want a positive, finite rate", ErrInvalidConfig, float64(c.RequestRate))
	case c.MaxSeries < 1:
		return fmt.Errorf("%w: max series %d: want 1 or more", ErrInvalidConfig, c.MaxSeries)
	case c.ExpiryWarning < 0:
		return fmt.Errorf("%w: expiry warning %s: want 0 or more", ErrInvalidConfig, c.ExpiryWarning)
	case c.Lease < 100*time.Millisecond:
		return fmt.Errorf("%w: lease %s: want 100ms or more", ErrInvalidConfig, c.Lease)
	}
	return nil
}
