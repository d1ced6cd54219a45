package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/apiops-worker/apiops-worker/natsconn"
)

// flagGroup is one heading of -h and the flags under it, in the order they
// were registered.
type flagGroup struct {
	heading string
	flags   []string
}

// envOnly are the settings that have no flag: a flag would show in ps and
// in /debug/pprof/cmdline.
var envOnly = []string{"NATS_PASSWORD", "NATS_TOKEN", "APINIZER_TOKEN", "APINIZER_CLIENT_SECRET"}

// usage writes -h: the flags under their headings, each with its variable
// and default, then the settings that have a variable only.
func (c config) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: worker [flags]

Consumes apiops jobs from NATS JetStream, applies them to Apinizer and
publishes one result per job. Every setting is an environment variable
(shown after each flag); a flag overrides its variable.
`)
	for _, g := range c.groups {
		fmt.Fprintf(w, "\n%s:\n", g.heading)
		for _, name := range g.flags {
			printFlag(w, fs.Lookup(name))
		}
	}
	fmt.Fprintf(w, "\nEnvironment only (no flag, so that they never show in ps):\n  %s\n", strings.Join(envOnly, ", "))
	fmt.Fprint(w, "\nOther:\n  -h, --help\n    \tthis help\n")
	printFlag(w, fs.Lookup("version"))
}

// printFlag writes one flag as flag.PrintDefaults does, with the two
// dashes the rest of the documentation uses.
func printFlag(w io.Writer, f *flag.Flag) {
	kind, usage := flag.UnquoteUsage(f)
	switch f.Value.(type) { // flag.UnquoteUsage knows only the flag package's own types
	case durationFlag:
		kind = "duration"
	case intFlag:
		kind = "int"
	}
	line := "  --" + f.Name
	if kind != "" {
		line += " " + kind
	}
	line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
	if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
		if kind == "string" {
			def = fmt.Sprintf("%q", def)
		}
		line += " (default " + def + ")"
	}
	fmt.Fprintln(w, line)
}

// named names a setting in errors by its variable and, when it has one, its
// flag: "WORKER_LEASE (--lease)".
func (c config) named(env string) string {
	if f := c.flags[env]; f != "" {
		return env + " (--" + f + ")"
	}
	return env
}

// natsNames names each NATS setting in errors by its variable and flag.
func (c config) natsNames() map[natsconn.Setting]string {
	return map[natsconn.Setting]string{
		natsconn.SettingURL:          c.named("NATS_URL"),
		natsconn.SettingCredsFile:    c.named("NATS_CREDS"),
		natsconn.SettingNKeySeedFile: c.named("NATS_NKEY"),
		natsconn.SettingUser:         c.named("NATS_USER"),
		natsconn.SettingToken:        c.named("NATS_TOKEN"),
		natsconn.SettingInboxPrefix:  c.named("NATS_INBOX_PREFIX"),
		natsconn.SettingStartupRetry: c.named("NATS_STARTUP_RETRY"),
		natsconn.SettingTLSCAFile:    c.named("NATS_TLS_CA"),
		natsconn.SettingTLSCertFile:  c.named("NATS_TLS_CERT"),
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l, err
}
