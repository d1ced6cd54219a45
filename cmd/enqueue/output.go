package main

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// output is the --output flag: table for people, json for scripts. Each
// command states its default, what it printed before the flag existed
// (rather than guessing from whether stdout is a terminal), so that scripts
// reading it keep working and a pipe shows what the terminal showed.
type output string

func (o *output) register(cmd *cobra.Command, def string) {
	o.flag(cmd.Flags(), "table or json (default "+def+")")
}

// flag adds -o/--output to fs, for a command whose usage text says more
// than register's (--wait's).
func (o *output) flag(fs *pflag.FlagSet, usage string) {
	fs.VarP(o, "output", "o", usage)
}

func (o *output) String() string { return string(*o) }
func (o *output) Type() string   { return "format" }
func (o *output) Set(v string) error {
	if v != "table" && v != "json" {
		return errors.New("want table or json")
	}
	*o = output(v)
	return nil
}

// resolve is the format asked for, or def.
func (o *output) resolve(def string) string {
	if *o != "" {
		return string(*o)
	}
	return def
}
