package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds reads a process's user plus system CPU time.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields start after its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// peakRSS reads a process's high-water resident set size (VmHWM), in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// proc is a child process under measurement: the worker or the baseline
// consumer.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // set before exited closes

	// readyAt is when the process reported itself ready to consume.
	readyAt    time.Time
	cpuAtReady float64

	metricsAddr   string
	pprofAddr     string
	maxGoroutines int
	stopSampling  func()
}

// start runs bin with exactly env (plus PATH and HOME), its stderr in a log
// file under dir.
func start(dir, name, bin string, env []string, stdout io.Writer) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout = stdout
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{}), stopSampling: func() {}}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// failure describes an early exit with the tail of the process's log.
func (p *proc) failure() error {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s exited early (%v): %s", p.name, p.err, b)
}

// exitedOr returns the process's early exit, with its log, if it has
// exited, else err.
func (p *proc) exitedOr(err error) error {
	select {
	case <-p.exited:
		return p.failure()
	default:
		return err
	}
}

func (p *proc) markReady() {
	p.readyAt = time.Now()
	p.cpuAtReady, _ = cpuSeconds(p.cmd.Process.Pid)
}

// waitHTTPReady polls the worker's /readyz every 2ms until it answers 200.
func (p *proc) waitHTTPReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return p.failure()
		default:
		}
		resp, err := client.Get("http://" + p.metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.markReady()
				return nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", p.name, timeout)
}

// waitLineReady waits for the baseline consumer's "ready" line on r.
func (p *proc) waitLineReady(r io.Reader, timeout time.Duration) error {
	line := make(chan error, 1)
	go func() {
		s := bufio.NewScanner(r)
		if s.Scan() && s.Text() == "ready" {
			line <- nil
		} else {
			line <- errors.New("no ready line")
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case err := <-line:
		if err != nil {
			<-p.exited
			return p.failure()
		}
		p.markReady()
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s not ready within %s", p.name, timeout)
	}
}

// sampleGoroutines reads go_goroutines from the worker's /metrics every
// interval, keeping the maximum, until stopSampling.
func (p *proc) sampleGoroutines(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 2 * time.Second}
	sample := func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.metricsAddr+"/metrics", nil)
		resp, err := client.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				if v, err := strconv.ParseFloat(rest, 64); err == nil {
					p.maxGoroutines = max(p.maxGoroutines, int(v))
				}
				return
			}
		}
	}
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	p.stopSampling = func() {
		cancel()
		wg.Wait()
	}
}

// cpuProfile saves the worker's CPU profile over the next d (the worker
// runs with WORKER_PPROF) to path.
func (p *proc) cpuProfile(d time.Duration, path string) error {
	return p.profile(fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), d+10*time.Second, path)
}

// profile saves the worker's profile /debug/pprof/<query> to path.
func (p *proc) profile(query string, timeout time.Duration, path string) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(fmt.Sprintf("http://%s/debug/pprof/%s", p.pprofAddr, query))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s: %s", query, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// measure reads CPU seconds since ready and peak RSS, before kill.
func (p *proc) measure() (cpu float64, rss int64, err error) {
	p.stopSampling()
	pid := p.cmd.Process.Pid
	c, err1 := cpuSeconds(pid)
	r, err2 := peakRSS(pid)
	return c - p.cpuAtReady, r, errors.Join(err1, err2)
}

// kill ends the process; its figures are read already, and the server it
// talks to is torn down next, so a graceful shutdown would only cost the
// worker's pull wait.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// limitedBuffer keeps the last 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = l.b[len(l.b)-4096:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
