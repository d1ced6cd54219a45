// Package integration holds the end-to-end suites: the project's binaries run in the same
// FROM scratch images as in production (deploy/docker/), on a Docker network, driven by
// testcontainers-go.
//
// The package has only tests; this file carries its documentation. The harness
// (harness_test.go) compiles each binary statically and builds its image at most once per
// run, when a test first needs it, and removes the images at the end. Without a Docker
// engine the tests skip, unless INTEGRATION_REQUIRED=true (as in CI), which turns that into
// a failure.
//
// Run with:
//
//	TESTCONTAINERS_RYUK_DISABLED=true go test -v -count=1 ./integration/
//
// The Ryuk reaper image cannot be pulled here, so the harness terminates every container and
// network in t.Cleanup itself, failed test or not; it sets TESTCONTAINERS_RYUK_DISABLED=true
// when the variable is unset.
package integration
