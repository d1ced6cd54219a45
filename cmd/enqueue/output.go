package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// output is the --output flag: table for people, json for scripts. Each
// command states its default, what it printed before the flag existed
// (rather than guessing from whether stdout is a terminal), so that scripts
// reading it keep working and a pipe shows what the terminal showed.
type output string

func (o *output) register(cmd *cobra.Command, def string) {
	cmd.Flags().VarP(o, "output", "o", "table or json (default "+def+")")
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
