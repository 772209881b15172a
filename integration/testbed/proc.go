//go:build unix

package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one started program: the leader of its own process group, with
// stdout and stderr appended to a log file, and a goroutine that reaps it.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	mu      sync.Mutex
	waitErr error // exit status, valid after done
	killed  bool  // we had to send SIGKILL
}

// startProc starts path with args in dir, output appended to logPath, and
// returns once the process runs. as, if not nil, runs it as another user.
func startProc(name, path string, args []string, dir, logPath string, env []string, as *syscall.Credential) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return nil, fmt.Errorf("testbed: %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = env
	setProcAttr(cmd, as)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("testbed: starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit status once the process has exited (-1 for a signal).
func (p *proc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// result is the outcome of Wait, plus whether we had to kill it.
func (p *proc) result() error {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed {
		return fmt.Errorf("testbed: %s (pid %d) did not stop in time and was killed", p.name, p.pid())
	}
	if p.waitErr != nil {
		return fmt.Errorf("testbed: %s (pid %d): %w", p.name, p.pid(), p.waitErr)
	}
	return nil
}

// stop sends sig to the process group, waits up to grace for the exit, then
// kills the group. It returns once the process has exited.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	_ = signalGroup(p.pid(), sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.kill()
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *proc) kill() {
	if p.exited() {
		// The leader is gone; its group may still hold children.
		_ = signalGroup(p.pid(), sigKill)
		return
	}
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	_ = signalGroup(p.pid(), sigKill)
	<-p.done
}

// tailFile returns the last max bytes of a file, starting at a line boundary,
// or a note saying why it cannot.
func tailFile(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ""
		}
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	off := int64(0)
	if st.Size() > max {
		off = st.Size() - max
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return fmt.Sprintf("[... %d earlier bytes of %s omitted ...]\n%s", off, path, b)
	}
	return string(b)
}

// keepDirs reports whether STOX_TESTBED_KEEP=1 asks to keep temporary
// directories (configs, logs, data) after the test for a post-mortem.
func keepDirs() bool { return os.Getenv("STOX_TESTBED_KEEP") == "1" }

// section formats a titled block for Logs output, or "" if text is empty.
func section(title, text string) string {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return ""
	}
	return "==== " + title + " ====\n" + text + "\n"
}
