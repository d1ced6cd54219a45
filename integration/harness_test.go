package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	apinetwork "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/apiops-worker/apiops-worker/internal/gomod"
)

const (
	// buildTimeout bounds building one image: compiling its binary (nats-server from a cold
	// cache takes about a minute on two cores) and the docker build.
	buildTimeout = 5 * time.Minute
	// probeTimeout bounds the check that a Docker engine answers at all.
	probeTimeout = 30 * time.Second
	// startTimeout bounds creating one container and waiting until it is ready.
	startTimeout = 90 * time.Second
	// opTimeout bounds one Docker operation in a helper: stop, pause, connect, logs, ...
	opTimeout = 60 * time.Second
	// stopGrace is how long a stopped container gets between SIGTERM and SIGKILL. Our
	// binaries shut down on SIGTERM well within it.
	stopGrace = 10 * time.Second

	natsClientPort  = "4222/tcp"
	natsMonitorPort = "8222/tcp"
	simPort         = "8080/tcp"
)

// projectImages maps each image name, which is also the name of its binary and of its
// Dockerfile deploy/docker/<name>.Dockerfile, to the package its binary is built from.
// It mirrors mk/images.mk.
var projectImages = map[string]string{
	"nats-server":  "github.com/nats-io/nats-server/v2",
	"worker":       "./cmd/worker",
	"enqueue":      "./cmd/enqueue",
	"apinizer-sim": "./cmd/apinizer-sim",
}

// harness is what TestMain prepares once per run for every test.
//
// Images are built on first use and at most once per run: a run limited with -run builds
// only what it needs, and a cmd/ package that does not compile fails the tests that need
// it, with the compiler's message, rather than the whole suite.
type harness struct {
	// skip, when not empty, is why every Docker test skips: no engine answered and
	// INTEGRATION_REQUIRED is not true.
	skip string
	// docker runs the operations testcontainers does not wrap: pause, kill, network
	// connect and disconnect, image removal.
	docker *client.Client
	// root is the module root; work a scratch directory for binaries and build contexts.
	root, work string
	// tag is this run's image tag, so that concurrent runs on one engine do not clobber
	// each other's images and the apiops/<name>:dev images of `make images` are left alone.
	tag string
	// images maps an image name to the function that builds it once and returns its
	// reference. The map is written only by TestMain.
	images map[string]func() (string, error)

	mu    sync.Mutex
	built []string // references to remove at the end of the run
}

var env harness

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests is TestMain's body, apart so that deferred clean-ups run before os.Exit.
func runTests(m *testing.M) int {
	// The Ryuk reaper image cannot be pulled in our environments, and every helper here
	// removes what it creates in t.Cleanup, so the reaper is off unless asked for. This
	// must happen before testcontainers reads its configuration (once, on first use).
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
			fmt.Fprintf(os.Stderr, "integration: %v\n", err)
			return 1
		}
	}
	if err := useLocalDaemonPorts(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	required := os.Getenv("INTEGRATION_REQUIRED") == "true"

	docker, err := connectDocker(context.Background())
	if err != nil {
		if required {
			fmt.Fprintf(os.Stderr, "integration: INTEGRATION_REQUIRED=true but no Docker engine answers: %v\n", err)
			return 1
		}
		env.skip = fmt.Sprintf("no Docker engine answers (%v); set INTEGRATION_REQUIRED=true to make this a failure", err)
		return m.Run()
	}
	defer docker.Close()

	root, err := gomod.Root()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	work, err := os.MkdirTemp("", "apiops-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: scratch directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(work)

	env.docker = docker
	env.root = root
	env.work = work
	env.tag = fmt.Sprintf("run-%d-%d", time.Now().Unix(), os.Getpid())
	env.images = make(map[string]func() (string, error), len(projectImages))
	for name, pkg := range projectImages {
		env.images[name] = sync.OnceValues(func() (string, error) { return buildImage(name, pkg) })
	}
	defer removeImages()

	return m.Run()
}

// useLocalDaemonPorts makes testcontainers look for published ports on localhost when the
// Docker engine runs in this very network namespace although we are inside a container
// (Docker in Docker, as on our build machines). Inside a container testcontainers assumes a
// sibling set-up, where the engine is outside and publishes ports on the container's
// gateway, and on a local engine that address (the outer host) never answers. The docker0
// bridge is the sign that the engine is ours: it creates it in its own network namespace.
// An explicit TESTCONTAINERS_HOST_OVERRIDE or a remote DOCKER_HOST is left alone.
func useLocalDaemonPorts() error {
	if _, ok := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); ok {
		return nil
	}
	if host := os.Getenv("DOCKER_HOST"); host != "" && !strings.HasPrefix(host, "unix://") {
		return nil
	}
	if _, err := os.Stat("/.dockerenv"); err != nil {
		return nil // not in a container: testcontainers already uses localhost
	}
	if _, err := net.InterfaceByName("docker0"); err != nil {
		return nil // a sibling engine: testcontainers' gateway address is right
	}
	return os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
}

// connectDocker returns a client for the engine of the environment (DOCKER_HOST, or the
// default socket when it is unset) once that engine has answered a ping. testcontainers
// itself would quietly fall back to /var/run/docker.sock when DOCKER_HOST names an engine
// that does not answer; probing with a plain client makes an explicit DOCKER_HOST binding,
// and with a reachable one both resolve to the same engine.
func connectDocker(ctx context.Context) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()

	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("ping docker: %w", err)
	}
	return cli, nil
}

// buildImage compiles the binary of image name from pkg and builds the image from its
// deploy/docker Dockerfile, returning the image reference.
func buildImage(name, pkg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()

	dir := filepath.Join(env.work, name)
	binary := filepath.Join(env.work, "bin", name)
	if err := buildBinary(ctx, env.root, binary, pkg); err != nil {
		return "", err
	}
	if err := prepareContext(env.root, dir, binary, name); err != nil {
		return "", fmt.Errorf("build context for %s: %w", name, err)
	}

	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", fmt.Errorf("docker provider: %w", err)
	}
	defer provider.Close()

	var buildLog bytes.Buffer
	ref, err := provider.BuildImage(ctx, &testcontainers.ContainerRequest{
		FromDockerfile: testcontainers.FromDockerfile{
			Context:        dir,
			Dockerfile:     "Dockerfile",
			Repo:           "apiops-integration/" + name,
			Tag:            env.tag,
			BuildLogWriter: &buildLog,
			// removeImages deletes it at the end of the run.
			KeepImage: true,
		},
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: %w\n%s", name, err, buildLog.String())
	}
	env.mu.Lock()
	env.built = append(env.built, ref)
	env.mu.Unlock()
	return ref, nil
}

// buildBinary compiles pkg into binary with the flags of mk/images.mk: static (no cgo, as
// scratch has no libc), trimmed and stripped.
func buildBinary(ctx context.Context, root, binary, pkg string) error {
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", binary, pkg}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// prepareContext lays out dir as `make images` lays out dist/<name> (see
// deploy/docker/README.md), plus the image's Dockerfile: testcontainers sends only the
// context directory to the engine, so the Dockerfile has to be inside it.
func prepareContext(root, dir, binary, name string) error {
	for _, d := range []string{"etc/ssl/certs", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	copies := []struct {
		src, dst string
		mode     fs.FileMode
	}{
		{binary, name, 0o755},
		{filepath.Join(root, "deploy/docker/rootfs/etc/passwd"), "etc/passwd", 0o644},
		{filepath.Join(root, "deploy/docker/rootfs/etc/group"), "etc/group", 0o644},
		{"/etc/ssl/certs/ca-certificates.crt", "etc/ssl/certs/ca-certificates.crt", 0o644},
		{filepath.Join(root, "deploy/docker", name+".Dockerfile"), "Dockerfile", 0o644},
	}
	for _, c := range copies {
		if err := copyFile(filepath.Join(dir, c.dst), c.src, c.mode); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(dst, src string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// removeImages deletes the images built during the run. Errors are reported, not fatal:
// the tests have already passed or failed.
func removeImages() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for _, ref := range env.built {
		if _, err := env.docker.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			fmt.Fprintf(os.Stderr, "integration: remove image %s: %v\n", ref, err)
		}
	}
}

// requireDocker skips t when TestMain found no Docker engine and none is required.
func requireDocker(t testing.TB) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

// imageRef returns the reference of image name, building it if no test has yet.
func imageRef(t testing.TB, name string) string {
	t.Helper()
	requireDocker(t)
	build, ok := env.images[name]
	if !ok {
		t.Fatalf("no image %q: the images are %v", name, slices.Sorted(maps.Keys(projectImages)))
	}
	ref, err := build()
	if err != nil {
		t.Fatalf("image %s: %v", name, err)
	}
	return ref
}

// startNetwork creates a user-defined bridge network, on which containers reach each other
// by alias. It is removed when the test ends, after the containers started later in the
// test (t.Cleanup runs last-in first-out).
func startNetwork(t testing.TB) *testcontainers.DockerNetwork {
	t.Helper()
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()

	nw, err := network.New(ctx)
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := nw.Remove(ctx); err != nil {
			t.Errorf("remove network %s: %v", nw.Name, err)
		}
	})
	return nw
}

// startContainer creates and starts a container and waits for req.WaitingFor. Whatever
// happens, even a failed start, the container is terminated when the test ends, and its
// logs are written to the test log first if the test failed.
func startContainer(t testing.TB, req testcontainers.ContainerRequest) testcontainers.Container {
	t.Helper()
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
	})
	// GenericContainer returns the container along with the error when it got as far as
	// creating it (a wait strategy that timed out, say), so clean-up is registered first.
	// TerminateContainer accepts a nil container.
	t.Cleanup(func() { terminate(t, c) })
	if err != nil {
		if c != nil && c.GetContainerID() != "" {
			logs(t, c)
		}
		t.Fatalf("start container from %s: %v", req.Image, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs(t, c)
		}
	})
	return c
}

// terminate stops and removes c and its anonymous volumes.
func terminate(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// A test may fail between pausing a container and unpausing it; a paused process never
	// sees the stop signal, so unpause first.
	if c != nil && c.GetContainerID() != "" {
		if state, err := c.State(ctx); err == nil && state.Paused {
			if _, err := env.docker.ContainerUnpause(ctx, c.GetContainerID(), client.ContainerUnpauseOptions{}); err != nil {
				t.Errorf("unpause container %s before terminating it: %v", shortID(c), err)
			}
		}
	}
	if err := testcontainers.TerminateContainer(c, testcontainers.StopContext(ctx), testcontainers.StopTimeout(stopGrace)); err != nil {
		t.Errorf("terminate container: %v", err)
	}
}

// logs writes c's stdout and stderr to the test log.
func logs(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		t.Logf("logs of container %s: %v", shortID(c), err)
		return
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	if err != nil {
		t.Logf("logs of container %s (incomplete: %v):\n%s", shortID(c), err, out)
		return
	}
	t.Logf("logs of container %s:\n%s", shortID(c), out)
}

func shortID(c testcontainers.Container) string {
	id := c.GetContainerID()
	return id[:min(12, len(id))]
}

// hostURL returns scheme://host:port for reaching c's port (as "8080/tcp") from the test
// process. Ask again after a restart: Docker maps a new host port every time a container
// starts.
func hostURL(t testing.TB, c testcontainers.Container, scheme, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	u, err := c.PortEndpoint(ctx, port, scheme)
	if err != nil {
		t.Fatalf("host address of container %s port %s: %v", shortID(c), port, err)
	}
	return u
}

// readOnlyRootfs runs a container as production should: only declared volumes writable.
// The images are built for it, and the tests prove that they work that way.
func readOnlyRootfs(hc *container.HostConfig) {
	hc.ReadonlyRootfs = true
}

// natsNode is a nats-server container with JetStream enabled.
type natsNode struct {
	Container testcontainers.Container
	// Name is the server name and the container's alias on its network.
	Name string
	// NetworkURL is the client URL for other containers on the network.
	NetworkURL string
}

// HostURL is the client URL for the test process. It changes when the node restarts.
func (n *natsNode) HostURL(t testing.TB) string {
	t.Helper()
	return hostURL(t, n.Container, "nats", natsClientPort)
}

// startNATS starts a JetStream-enabled nats-server named name, with alias name on nw, and
// waits until it serves clients. args are appended to the server's command line (cluster
// routes, for example); they replace the image's default CMD, so the JetStream and
// monitoring flags are restated here.
func startNATS(t testing.TB, nw *testcontainers.DockerNetwork, name string, args ...string) *natsNode {
	t.Helper()
	cmd := append([]string{"--server_name", name, "--jetstream", "--store_dir", "/data", "--http_port", "8222"}, args...)
	c := startContainer(t, testcontainers.ContainerRequest{
		Image:              imageRef(t, "nats-server"),
		Cmd:                cmd,
		ExposedPorts:       []string{natsClientPort, natsMonitorPort},
		Networks:           []string{nw.Name},
		NetworkAliases:     map[string][]string{nw.Name: {name}},
		HostConfigModifier: readOnlyRootfs,
		WaitingFor: wait.ForAll(
			wait.ForLog("Server is ready"),
			// The log line stays in the container's log across restarts, so on
			// startStopped it would pass at once; the health endpoint does not.
			// js-server-only: a clustered node is healthy before the cluster has a
			// JetStream leader, which needs the other nodes to be started too.
			wait.ForHTTP("/healthz?js-server-only=true").WithPort(natsMonitorPort),
		).WithDeadline(startTimeout),
	})
	return &natsNode{Container: c, Name: name, NetworkURL: "nats://" + name + ":4222"}
}

// simulator is an apinizer-sim container: the Apinizer management API with scripted faults.
type simulator struct {
	Container testcontainers.Container
	// NetworkURL is the base URL for other containers on the network (APINIZER_URL).
	NetworkURL string
}

// HostURL is the base URL for the test process. It changes when the container restarts.
func (s *simulator) HostURL(t testing.TB) string {
	t.Helper()
	return hostURL(t, s.Container, "http", simPort)
}

// startSim starts the Apinizer simulator with alias apinizer-sim on nw and waits until it
// answers /healthz. args are apinizer-sim flags (--token, --latency, --seed, --style);
// without them it serves the built-in seed: project MyProject with certificate
// my-certificate, key my-key and credential api-user.
func startSim(t testing.TB, nw *testcontainers.DockerNetwork, args ...string) *simulator {
	t.Helper()
	const alias = "apinizer-sim"
	c := startContainer(t, testcontainers.ContainerRequest{
		Image:              imageRef(t, "apinizer-sim"),
		Cmd:                args,
		ExposedPorts:       []string{simPort},
		Networks:           []string{nw.Name},
		NetworkAliases:     map[string][]string{nw.Name: {alias}},
		HostConfigModifier: readOnlyRootfs,
		WaitingFor:         wait.ForHTTP("/healthz").WithPort(simPort).WithStartupTimeout(startTimeout),
	})
	return &simulator{Container: c, NetworkURL: "http://" + alias + ":8080"}
}

// stopContainer stops c gracefully (SIGTERM, then SIGKILL after stopGrace). Its
// anonymous volumes, such as nats-server's /data, survive until it is terminated.
func stopContainer(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	grace := stopGrace
	if err := c.Stop(ctx, &grace); err != nil {
		t.Fatalf("stop container %s: %v", shortID(c), err)
	}
}

// killContainer sends SIGKILL to c's process: a crash, with no graceful shutdown.
func killContainer(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := env.docker.ContainerKill(ctx, c.GetContainerID(), client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatalf("kill container %s: %v", shortID(c), err)
	}
	// The kill is asynchronous: wait until the engine reports the container stopped, so
	// the caller may start it again at once.
	for {
		state, err := c.State(ctx)
		if err != nil {
			t.Fatalf("state of killed container %s: %v", shortID(c), err)
		}
		if !state.Running {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %s still running after SIGKILL: %v", shortID(c), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startStopped starts a stopped or killed container again and waits for its wait
// strategy. Mapped host ports change; read them again (natsNode.HostURL).
func startStopped(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start container %s again: %v", shortID(c), err)
	}
}

// pauseContainer freezes every process in c (cgroup freezer): connections stay open but
// nothing answers, as with a hung process or a long GC pause.
func pauseContainer(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := env.docker.ContainerPause(ctx, c.GetContainerID(), client.ContainerPauseOptions{}); err != nil {
		t.Fatalf("pause container %s: %v", shortID(c), err)
	}
}

// unpauseContainer resumes a container frozen by pauseContainer.
func unpauseContainer(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := env.docker.ContainerUnpause(ctx, c.GetContainerID(), client.ContainerUnpauseOptions{}); err != nil {
		t.Fatalf("unpause container %s: %v", shortID(c), err)
	}
}

// disconnectNetwork cuts c off nw: its peers can no longer reach it nor it them, and
// established connections stop carrying traffic. If nw is c's only network, its published
// ports stop answering too.
func disconnectNetwork(t testing.TB, c testcontainers.Container, nw *testcontainers.DockerNetwork) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := env.docker.NetworkDisconnect(ctx, nw.ID, client.NetworkDisconnectOptions{Container: c.GetContainerID(), Force: true}); err != nil {
		t.Fatalf("disconnect container %s from network %s: %v", shortID(c), nw.Name, err)
	}
}

// connectNetwork attaches c to nw with the given aliases. Pass the aliases the container
// had (a natsNode's Name, for instance): disconnecting dropped them.
func connectNetwork(t testing.TB, c testcontainers.Container, nw *testcontainers.DockerNetwork, aliases ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := env.docker.NetworkConnect(ctx, nw.ID, client.NetworkConnectOptions{
		Container:      c.GetContainerID(),
		EndpointConfig: &apinetwork.EndpointSettings{Aliases: aliases},
	})
	if err != nil {
		t.Fatalf("connect container %s to network %s: %v", shortID(c), nw.Name, err)
	}
}
