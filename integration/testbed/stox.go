//go:build unix

package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

var build struct {
	mu   sync.Mutex
	path string // set once a build succeeded
}

// RepoRoot returns the root of the stox module, found from this package's
// source directory (integration/testbed).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if mod := strings.TrimSpace(string(out)); filepath.IsAbs(mod) {
			return filepath.Dir(mod), nil
		}
	}
	return "", errors.New("testbed: cannot find the stox repository root")
}

// BuildStox builds the gateway daemon (./examples/gateway) with the race
// detector and returns the path of the binary. The build runs once per test
// process (the first successful build is reused; a failed one is retried);
// repoRoot "" means RepoRoot(). The binary lives under $TMPDIR and is
// replaced by the next test process's build.
func BuildStox(ctx context.Context, repoRoot string) (string, error) {
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.path != "" {
		return build.path, nil
	}
	if repoRoot == "" {
		var err error
		if repoRoot, err = RepoRoot(); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256([]byte(repoRoot))
	dir := filepath.Join(os.TempDir(), "stox-testbed-build-"+strconv.Itoa(os.Geteuid())+"-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	bin := filepath.Join(dir, "stox")
	tmp := bin + ".tmp-" + strconv.Itoa(os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", tmp, "./examples/gateway")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("testbed: go build -race ./examples/gateway in %s: %w\n%s", repoRoot, err, out)
	}
	// Rename is atomic: a concurrent test process keeps running its own inode.
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	build.path = bin
	return bin, nil
}

// Stox is a running stox daemon (`stox -config FILE`), its configuration and
// output in a temporary directory.
type Stox struct {
	PID  int
	Dir  string // stox.toml and stox.log
	Conf string // path of the configuration file

	p *proc

	mu        sync.Mutex
	stopped   bool
	stopErr   error
	finalLogs string
}

// StartStox writes configTOML to Dir/stox.toml and starts bin -config on it,
// stdout and stderr going to Dir/stox.log. It returns as soon as the process
// runs: use WaitReady before talking to it. ctx only bounds the start.
func StartStox(ctx context.Context, bin, configTOML string) (*Stox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stox-run-*")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	conf := filepath.Join(dir, "stox.toml")
	if err := os.WriteFile(conf, []byte(configTOML), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("testbed: %w", err)
	}
	p, err := startProc("stox", bin, []string{"-config", conf}, dir, filepath.Join(dir, "stox.log"), os.Environ(), nil)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &Stox{PID: p.pid(), Dir: dir, Conf: conf, p: p}, nil
}

// WaitReady returns once componentJID answers a disco#info query sent by c
// (DESIGN.md: the component answers disco#info from the handshake on), or
// fails early if the daemon exits.
func (s *Stox) WaitReady(ctx context.Context, c *Client, componentJID string) error {
	query := "<iq type='get' to='" + xmlEscape(componentJID) + "'><query xmlns='" + NSDiscoInfo + "'/></iq>"
	var last error
	for {
		if s.p.exited() {
			return fmt.Errorf("testbed: stox exited before it was ready (%v)\n%s", s.p.result(), s.Logs())
		}
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.IQ(attempt, query)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if errors.Is(err, ErrStreamClosed) {
			return fmt.Errorf("testbed: waiting for %s: %w", componentJID, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbed: %s never answered disco#info: %w (last: %v)\n%s", componentJID, ctx.Err(), last, s.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Exited reports whether the daemon has exited.
func (s *Stox) Exited() bool { return s.p.exited() }

// Stop sends SIGTERM and waits for the exit (SIGKILL after 10 s). It returns
// an error if the daemon exited with a non-zero status — 66 is the race
// detector reporting a data race — or had to be killed. It then removes Dir
// (kept when STOX_TESTBED_KEEP=1); Logs still works. Calling it again
// returns the same result.
func (s *Stox) Stop() error {
	s.p.stop(sigTerm, 10*time.Second)
	return s.finish()
}

// Kill ends the daemon with SIGKILL (a crash, for restart tests) and
// removes Dir like Stop.
func (s *Stox) Kill() {
	s.p.kill()
	_ = s.finish()
}

func (s *Stox) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.stopErr
	}
	s.stopped = true
	s.stopErr = s.p.result()
	if s.stopErr != nil && s.p.exitCode() == 66 {
		s.stopErr = fmt.Errorf("%w: the race detector found a data race (see Logs)", s.stopErr)
	}
	s.finalLogs = s.logsLocked()
	if keepDirs() {
		s.finalLogs += "(kept " + s.Dir + ")\n"
	} else {
		_ = os.RemoveAll(s.Dir)
	}
	return s.stopErr
}

// Logs returns the tail of the daemon's output, for failure messages.
func (s *Stox) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.finalLogs
	}
	return s.logsLocked()
}

func (s *Stox) logsLocked() string {
	return section("stox output ("+s.Dir+")", tailFile(filepath.Join(s.Dir, "stox.log"), 64<<10))
}
