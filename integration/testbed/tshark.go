//go:build unix

package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Capture is a tshark capture on the loopback interface, written to a file in
// Dir and decoded afterwards by tshark's own dissectors: an independent
// parser that judges what stox puts on the wire.
type Capture struct {
	Dir  string
	file string
	p    *proc
}

// StartCapture starts `tshark -i lo -f FILTER -w FILE` in dir and returns
// once tshark says it is capturing. filter is a capture (BPF) filter such as
// "udp port 5060"; keep it narrow, loopback carries every test's traffic.
func StartCapture(ctx context.Context, dir, filter string) (*Capture, error) {
	bin, err := exec.LookPath("tshark")
	if err != nil {
		return nil, fmt.Errorf("testbed: tshark: %w", err)
	}
	c := &Capture{Dir: dir, file: filepath.Join(dir, "capture.pcapng")}
	logPath := filepath.Join(dir, "tshark.log")
	c.p, err = startProc("tshark", bin, []string{"-i", "lo", "-f", filter, "-w", c.file, "-q"}, dir, logPath, os.Environ(), nil)
	if err != nil {
		return nil, err
	}
	for {
		if strings.Contains(tailFile(logPath, 4096), "Capturing on") {
			// dumpcap prints this just before its first read; give the
			// socket a moment to be attached.
			time.Sleep(200 * time.Millisecond)
			return c, nil
		}
		if c.p.exited() {
			return nil, fmt.Errorf("testbed: tshark exited: %s", tailFile(logPath, 2048))
		}
		select {
		case <-ctx.Done():
			c.p.kill()
			return nil, fmt.Errorf("testbed: tshark did not start: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends the capture (SIGINT, so the file is complete).
func (c *Capture) Stop() {
	c.p.stop(syscall.SIGINT, 5*time.Second)
}

// Fields stops the capture and decodes it: one row per packet matching the
// display filter, one column per field (several occurrences of a field are
// joined with ","). Row "_ws.malformed" style fields work too.
func (c *Capture) Fields(ctx context.Context, display string, fields ...string) ([][]string, error) {
	// Let packets in flight reach the file before stopping.
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	args := []string{"-r", c.file, "-Y", display, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.CommandContext(ctx, "tshark", args...)
	cmd.Dir = c.Dir
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("testbed: tshark -r: %w: %s", err, stderr)
	}
	var rows [][]string
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		rows = append(rows, strings.Split(line, "\t"))
	}
	return rows, nil
}
