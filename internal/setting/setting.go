// Package setting reports the settings of a component's Config that are out
// of range, in errors that say which field, so that the command mapping
// environment variables and flags onto the Config can name the variable at
// fault. The component states each rule once, in its Validate.
package setting

import (
	"errors"
	"fmt"
)

// Error is one setting out of range. It wraps the component's
// invalid-configuration error.
type Error struct {
	// Kind is the component's ErrInvalidConfig.
	Kind error
	// Field is the Config field, such as "Concurrency".
	Field string
	// Value is the field's value.
	Value any
	// Want says what the value must be, such as "1 to 4096".
	Want string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v: %s must be %s, not %v", e.Kind, e.Field, e.Want, e.Value)
}

func (e *Error) Unwrap() error { return e.Kind }

// Checks collects the settings out of range of one Config.
type Checks struct {
	kind error
	errs []error
}

// New returns Checks whose errors wrap kind.
func New(kind error) *Checks { return &Checks{kind: kind} }

// Want records field, of value value, as out of range unless ok; want says
// what it must be.
func (c *Checks) Want(ok bool, field string, value any, want string) {
	if !ok {
		c.errs = append(c.errs, &Error{Kind: c.kind, Field: field, Value: value, Want: want})
	}
}

// Err joins every setting out of range, or is nil.
func (c *Checks) Err() error { return errors.Join(c.errs...) }

// Each calls f on every error that err joins, or on err itself.
func Each(err error, f func(error)) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			f(e)
		}
		return
	}
	if err != nil {
		f(err)
	}
}
