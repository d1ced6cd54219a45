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
// Exit status: 0 when every job was published (and, with --wait, succeeded
// or, for an apply, found its certificate live already: unchanged),
// 1 when a job did not succeed or its result did not arrive in time, 2 for a
// usage, input or connection error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 2
	case errors.Is(err, errNotSucceeded):
		fmt.Fprintln(stderr, "enqueue:", err)
		return 1
	default:
		fmt.Fprintln(stderr, "enqueue:", err)
		return 2
	}
}

const usage = `usage:
  enqueue certificate update --project P --name N --pem FILE --alias A --description D --env E1,E2 [--jwk-update-action NULLIFY|UPDATE] [--update-scope SAME_PROJECT|ALL_PROJECTS] [--expected-thumbprint SHA1]
  enqueue certificate create --project P --name N --pem FILE --alias A --description D --env E1,E2
  enqueue certificate apply --project P --name N --pem-file FILE --alias A --description D --env E1,E2 --jwk-update-action NULLIFY|UPDATE [--update-scope S] [--expected-thumbprint SHA1]
  enqueue certificate delete --project P --name N [--jwk-delete-action NULLIFY|DELETE] [--expected-thumbprint SHA1]
  enqueue key delete --project P --name N [--jwk-delete-action NULLIFY|DELETE]
  enqueue credential delete --project P --name USERNAME
  enqueue credential publickey delete --project P --name USERNAME
  enqueue key create --project P --name N --type SECRET_KEY|PRIVATE_KEY|PUBLIC_KEY [--algorithm AES|DES|DESede|RSA] --env E1,E2 --content-file FILE [--alias A] [--description D] [--recipient age1…]
  enqueue key update --project P --name N --type T [--algorithm A] [--env E1,E2 --content-file FILE] [--alias A] [--description D] [--recipient age1…] [--jwk-update-action NULLIFY|UPDATE] [--update-scope S]
        (FILE is sent base64-encoded; SECRET_KEY and PRIVATE_KEY material is encrypted here to --recipient or $WORKER_AGE_RECIPIENT, comma-separated, and never leaves this machine in clear)
  enqueue credential publickey set --project P --name USERNAME --key KEY
  enqueue credential certificate set --project P --name USERNAME --certificate CERT
  enqueue credential certificate delete --project P --name USERNAME
  enqueue jwk parse --project P --name JWK --certificate CERT --env E --use-type SIGNATURE|ENCRYPTION --algorithm RS256 [--description D]
  enqueue jwk delete --project P --name JWK
  enqueue publish [--subject S] FILE|-     (JSON object, JSON array or NDJSON; a "subject" field per job overrides --subject)
  enqueue result JOB_ID                     (print a past job's result)
  enqueue dlq list [--subject S] [--limit N] | show ID | replay ID|--all [--subject S] | purge [--subject S]
  enqueue certificates expiring [--within 30d|720h|30]   (from the inventory's latest round; no Apinizer token)

common flags: --nats-url URL ($NATS_URL) --creds FILE ($NATS_CREDS) --nkey FILE ($NATS_NKEY) --user U ($NATS_USER)
              --inbox-prefix P ($NATS_INBOX_PREFIX) --tls-ca FILE ($NATS_TLS_CA)
              --tls-cert FILE ($NATS_TLS_CERT) --tls-key FILE ($NATS_TLS_KEY) --id JOB_ID --wait --timeout DURATION
              --scoped (publish on apiops.<resource>.<action>.<project>)
secrets only from the environment: $NATS_PASSWORD (with --user), $NATS_TOKEN
`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "publish":
		return runPublish(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "result":
		return runResult(ctx, args[1:], getenv, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args[1:], getenv, stdout, stderr)
	case "certificates":
		return runCertificates(ctx, args[1:], getenv, stdout, stderr)
	}
	return runJob(ctx, args, getenv, stdout, stderr)
}
