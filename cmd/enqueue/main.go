// Command enqueue publishes apiops jobs to NATS JetStream, one from flags or
// many from a JSON or NDJSON file, and can wait for their results or look up
// a past job's result.
//
//	enqueue certificate update --project P --name N --pem cert.pem --alias A --description D --env production,staging
//	enqueue certificate apply --project P --name N --pem-file cert.pem --alias A --description D --env production --jwk-update-action UPDATE --wait
//	enqueue key delete --project P --name my-key --wait
//	enqueue key create --project P --name k --type PRIVATE_KEY --env production --content-file key.pem --recipient age1…
//	enqueue publish --subject apiops.key.delete jobs.ndjson
//	enqueue result JOB_ID
//	enqueue dlq list | show ID | replay ID|--all [--subject S] | purge
//	enqueue certificates expiring --within 30d
//
// The commands are built on github.com/spf13/cobra rather than kong: it is
// what kubectl, gh and the nats ecosystem's users already know (help on
// every command, flags after arguments, shell completion), and its pflag
// flag sets let old flag names live on as hidden aliases.
//
// Exit status: 0 when every job was published (and, with --wait, succeeded
// or, for an apply, found its certificate live already: unchanged),
// 1 when a job did not succeed or its result did not arrive in time, 2 for a
// usage, input or connection error, or a job id that already names another
// job (ids.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/apiops-worker/apiops-worker/internal/buildinfo"
	"github.com/apiops-worker/apiops-worker/jobs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errNotSucceeded reports that a job waited for did not succeed, or that its
// result did not arrive in time; its details were printed already.
var errNotSucceeded = errors.New("not every job succeeded")

func exitCode(err error, stderr io.Writer) int {
	var st statusError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		fmt.Fprintln(stderr, "enqueue:", err)
		return st.code
	case errors.Is(err, errNotSucceeded):
		fmt.Fprintln(stderr, "enqueue:", err)
		return 1
	default:
		fmt.Fprintln(stderr, "enqueue:", err)
		return 2
	}
}

// statusError is an error with its own exit status (result's states).
type statusError struct {
	code int
	err  error
}

func (e statusError) Error() string { return e.err.Error() }
func (e statusError) Unwrap() error { return e.err }

// env is what every command reads besides its flags.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{getenv, stdin, stdout, stderr}
	root := newRoot(e)
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// newRoot builds the command tree: one command per job subject
// (apiops.key.delete is "enqueue key delete"), and publish, result, dlq,
// certificates.
func newRoot(e env) *cobra.Command {
	var c common
	root := &cobra.Command{
		Use:   "enqueue",
		Short: "Publish apiops jobs to NATS JetStream and inspect their results",
		Example: `  enqueue key delete --project P --name my-key --wait
  enqueue certificate apply --project P --name N --pem-file cert.pem --alias A --description D --env production --jwk-update-action UPDATE --wait
  enqueue publish --subject apiops.key.delete jobs.ndjson
  enqueue result JOB_ID
  enqueue dlq list --subject apiops.key.delete
  enqueue certificates expiring --within 30d
  enqueue completion bash > /etc/bash_completion.d/enqueue`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return unknown(cmd, args, e.stderr)
		},
	}
	c.registerNATS(root.PersistentFlags(), e.getenv)
	root.SetFlagErrorFunc(flagError)
	for _, subject := range jobs.Subjects {
		words := strings.Split(strings.TrimPrefix(subject, "apiops."), ".")
		parent := root
		for _, w := range words[:len(words)-1] {
			parent = group(parent, w, e)
		}
		parent.AddCommand(newJobCmd(subject, words[len(words)-1], &c, e))
	}
	root.AddCommand(newPublishCmd(&c, e), newResultCmd(&c, e), newDLQCmd(&c, e), newCertificatesCmd(&c, e))
	version := buildinfo.Version()
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.Version = version
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	root.SetGlobalNormalizationFunc(aliases)
	root.SetVersionTemplate("enqueue {{.Version}}\n")
	return root
}

// group returns parent's subcommand name, made on first use: a command
// that only holds others ("enqueue certificate").
func group(parent *cobra.Command, name string, e env) *cobra.Command {
	for _, c := range parent.Commands() {
		if c.Name() == name {
			return c
		}
	}
	g := &cobra.Command{
		Use:   name,
		Short: name + " jobs",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return unknown(cmd, args, e.stderr)
		},
	}
	parent.AddCommand(g)
	return g
}

// unknown answers a command that only holds others, given no or an unknown
// subcommand: the usage on stderr, an error naming the commands it has, and
// exit 2.
func unknown(cmd *cobra.Command, args []string, stderr io.Writer) error {
	fmt.Fprintf(stderr, "usage: %s COMMAND [flags]   (%s -h lists the commands)\n", cmd.CommandPath(), cmd.CommandPath())
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() && sub.Name() != "help" && sub.Name() != "completion" {
			names = append(names, sub.Name())
		}
	}
	want := "want " + strings.Join(names, ", ")
	words := strings.Fields(strings.TrimPrefix(cmd.CommandPath(), "enqueue"))
	if len(args) == 0 {
		if len(words) == 0 {
			return fmt.Errorf("no command given: %s", want)
		}
		return fmt.Errorf("%s: no command given: %s", strings.Join(words, " "), want)
	}
	return fmt.Errorf("unknown command %q: %s", strings.Join(append(words, args...), " "), want)
}

// flagError names a flag a command does not take as the flag package did
// before (scripts match it), and says where the list of flags is.
func flagError(cmd *cobra.Command, err error) error {
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		return fmt.Errorf("flag provided but not defined: -%s (%s -h lists the flags)", name, cmd.CommandPath())
	}
	return err
}

// aliases maps the flag names of earlier versions to today's, so that they
// keep working without showing in help.
func aliases(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	switch name {
	case "nats-url":
		name = "server"
	case "tls-ca":
		name = "tlsca"
	case "tls-cert":
		name = "tlscert"
	case "tls-key":
		name = "tlskey"
	case "pem":
		name = "pem-file"
	}
	return pflag.NormalizedName(name)
}
