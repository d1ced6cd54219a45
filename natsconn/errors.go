package natsconn

import "errors"

// A Setting is one field of Config, as a user would say it.
type Setting string

// The settings, as errors show them until a command renames them.
const (
	SettingURL            Setting = "NATS URL"
	SettingCredsFile      Setting = "NATS .creds file"
	SettingNKeySeedFile   Setting = "NATS NKey seed file"
	SettingUser           Setting = "NATS user"
	SettingToken          Setting = "NATS token"
	SettingInboxPrefix    Setting = "NATS inbox prefix"
	SettingTLSCAFile      Setting = "NATS TLS CA file"
	SettingTLSCertFile    Setting = "NATS TLS client certificate"
	SettingConnectTimeout Setting = "NATS connect timeout"
	SettingReconnectWait  Setting = "NATS reconnect wait"
	SettingPingInterval   Setting = "NATS ping interval"
	SettingStartupRetry   Setting = "NATS start-up retry"
)

// A SettingError is a setting that is missing or malformed, or a file that
// does not hold what the setting says. Err never holds a secret.
type SettingError struct {
	Setting Setting
	// Name is what the user calls the setting, if Rename gave one.
	Name string
	Err  error
}

func (e *SettingError) Error() string {
	name := e.Name
	if name == "" {
		name = string(e.Setting)
	}
	return name + ": " + e.Err.Error()
}

func (e *SettingError) Unwrap() error { return e.Err }

// Rename names each setting at fault in err as names says, so that a
// command's errors name its own environment variables; err's other
// errors, and settings names does not hold, stay as they are.
func Rename(err error, names map[Setting]string) error {
	switch e := err.(type) {
	case *SettingError:
		if name, ok := names[e.Setting]; ok {
			renamed := *e
			renamed.Name = name
			return &renamed
		}
	case interface{ Unwrap() []error }:
		var errs []error
		for _, inner := range e.Unwrap() {
			errs = append(errs, Rename(inner, names))
		}
		return errors.Join(errs...)
	}
	return err
}
