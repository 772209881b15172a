//go:build unix

package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Files RunSIPp makes SIPp write in its directory.
const (
	sippMessages = "messages.log" // -trace_msg: every message sent and received
	sippErrors   = "errors.log"   // -trace_err: unexpected messages, aborted calls
	sippLogs     = "logs.log"     // -trace_logs: the scenarios' <log> actions
	sippScreen   = "screen.log"   // -trace_screen: the statistics screens at exit
	sippOutput   = "sipp.out"     // stdout and stderr
)

// Scenario returns the path of a scenario shipped in
// integration/testdata/sipp, e.g. Scenario("uas_message.xml").
func Scenario(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "sipp", name)
}

// SIPp is one run of sipp.
type SIPp struct {
	Dir  string // where it runs and writes its traces
	PID  int
	Args []string // the full command line after "sipp"

	p          *proc
	stopOnDone func() bool
}

// SIPpError is what Wait returns when SIPp did not exit 0.
type SIPpError struct {
	Code int    // exit status; -1 if it died of a signal
	Log  string // tail of its error and <log> traces and of its output
}

func (e *SIPpError) Error() string {
	return fmt.Sprintf("testbed: sipp exited %d (%s)\n%s", e.Code, sippExitMeaning(e.Code), e.Log)
}

// sippExitMeaning explains SIPp's exit status (sipp -h, "Exit codes").
func sippExitMeaning(code int) string {
	switch code {
	case 0:
		return "all calls were successful"
	case 1:
		return "at least one call failed"
	case 97:
		return "exit on internal command; calls may have been processed"
	case 99:
		return "normal exit without calls processed"
	case 255:
		return "fatal error"
	case 254:
		return "fatal error binding a socket"
	case -1:
		return "killed by a signal"
	}
	return "unknown"
}

// RunSIPp starts `sipp -nostdin -trace_err -trace_msg -trace_logs
// -trace_screen ... args` in dir (tests pass t.TempDir()), with the trace
// files at fixed names in dir. Unless args set them, it adds -i 127.0.0.1
// -bind_local (loopback only), a free control port (-ci 127.0.0.1 -cp) and a
// free media port (-mp; SIPp binds it and the port two above it).
//
// If args contain -p, RunSIPp returns once SIPp listens on that port (or has
// already exited: Wait tells how), so a UAS is ready for requests. ctx bounds the whole run: SIPp is killed when it
// ends. Use Wait for a run that ends by itself (-m N), Stop otherwise.
func RunSIPp(ctx context.Context, dir string, args ...string) (*SIPp, error) {
	if dir == "" {
		return nil, errors.New("testbed: RunSIPp needs a directory")
	}
	has := func(flag string) bool { return slices.Contains(args, flag) }
	full := []string{"-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, sippErrors),
		"-trace_msg", "-message_file", filepath.Join(dir, sippMessages),
		"-trace_logs", "-log_file", filepath.Join(dir, sippLogs),
		"-trace_screen", "-screen_file", filepath.Join(dir, sippScreen),
	}
	if !has("-i") {
		full = append(full, "-i", "127.0.0.1", "-bind_local")
	}
	if !has("-cp") {
		cp, err := ReservePort(UDP)
		if err != nil {
			return nil, err
		}
		full = append(full, "-ci", "127.0.0.1", "-cp", strconv.Itoa(cp))
	}
	if !has("-mp") {
		mp, err := reserve(UDP, 4)
		if err != nil {
			return nil, err
		}
		full = append(full, "-mp", strconv.Itoa(mp))
	}
	full = append(full, args...)
	p, err := startProc("sipp", "sipp", full, dir, filepath.Join(dir, sippOutput), os.Environ(), nil)
	if err != nil {
		return nil, err
	}
	s := &SIPp{Dir: dir, PID: p.pid(), Args: full, p: p}
	s.stopOnDone = context.AfterFunc(ctx, p.kill)
	go func() {
		<-p.done
		s.stopOnDone()
	}()
	if port := flagValue(args, "-p"); port != "" {
		if err := s.waitListening(ctx, port, flagValue(args, "-t")); err != nil {
			p.kill()
			return nil, err
		}
	}
	return s, nil
}

// waitListening waits until the local port is bound (UDP) or listening (TCP),
// looking at /proc/net without touching the port.
func (s *SIPp) waitListening(ctx context.Context, port, transport string) error {
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("testbed: sipp -p %q: %w", port, err)
	}
	tcp := strings.HasPrefix(transport, "t") || strings.HasPrefix(transport, "l")
	for {
		if s.p.exited() {
			// Done already (a fast client run) or failed: Wait tells which.
			return nil
		}
		bound, known := portBound(n, tcp)
		if !known {
			// No /proc: give SIPp a moment instead.
			time.Sleep(300 * time.Millisecond)
			return nil
		}
		if bound {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbed: sipp never listened on port %d: %w\n%s", n, ctx.Err(), s.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// portBound reads /proc/net/{udp,tcp}[6] for a socket bound to port (TCP: in
// LISTEN state). known is false when /proc/net cannot be read.
func portBound(port int, tcp bool) (bound, known bool) {
	files := []string{"/proc/net/udp", "/proc/net/udp6"}
	if tcp {
		files = []string{"/proc/net/tcp", "/proc/net/tcp6"}
	}
	suffix := fmt.Sprintf(":%04X", port)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		known = true
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || !strings.HasSuffix(fields[1], suffix) {
				continue
			}
			if !tcp || fields[3] == "0A" { // 0A: TCP_LISTEN
				bound = true
			}
		}
		_ = f.Close()
	}
	return bound, known
}

func flagValue(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

// Wait waits for SIPp to exit and returns nil if it exited 0 (every call
// succeeded), a *SIPpError otherwise: 1 means some call failed, 99 that no
// call was processed.
func (s *SIPp) Wait() error {
	code := s.p.exitCode()
	if code == 0 {
		return nil
	}
	return &SIPpError{Code: code, Log: s.ErrLog() + section("sipp output", tailFile(filepath.Join(s.Dir, sippOutput), 4<<10))}
}

// Stop asks SIPp to exit (SIGUSR1: no new calls, running ones finish), kills
// it after 1 s (a call held by uas_message_noanswer.xml never finishes), and
// returns what Wait returns.
func (s *SIPp) Stop() error {
	s.p.stop(sigSoftStop, time.Second)
	return s.Wait()
}

// Stats returns SIPp's output and its last statistics screens, for failure
// messages.
func (s *SIPp) Stats() string {
	return section("sipp output ("+s.Dir+")", tailFile(filepath.Join(s.Dir, sippOutput), 16<<10)) +
		section("sipp screens", tailFile(filepath.Join(s.Dir, sippScreen), 16<<10))
}

// ErrLog returns SIPp's error trace and the output of the scenarios' <log>
// actions (uac_message.xml logs which status it expected and got).
func (s *SIPp) ErrLog() string {
	return section("sipp errors ("+s.Dir+")", tailFile(filepath.Join(s.Dir, sippErrors), 16<<10)) +
		section("sipp <log> output", tailFile(filepath.Join(s.Dir, sippLogs), 16<<10))
}

// Messages parses SIPp's message trace: every SIP message it sent and
// received so far, in order (SIPp flushes the trace as it goes). UDP
// retransmissions appear as often as they were sent or received.
func (s *SIPp) Messages() ([]*SIPMessage, error) {
	f, err := os.Open(filepath.Join(s.Dir, sippMessages))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("testbed: %w", err)
	}
	defer f.Close()
	return ParseTrace(f)
}

// Received is Messages restricted to what SIPp received.
func (s *SIPp) Received() ([]*SIPMessage, error) {
	all, err := s.Messages()
	return slices.DeleteFunc(all, func(m *SIPMessage) bool { return m.Sent }), err
}
