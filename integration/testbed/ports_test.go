//go:build unix

package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for _, network := range []string{TCP, UDP, TCPUDP} {
		for range 20 {
			p := FreePort(t, network)
			if seen[p] {
				t.Fatalf("port %d given twice", p)
			}
			seen[p] = true
			if !bindable(p, network != UDP, network != TCP) {
				t.Errorf("%s port %d does not bind", network, p)
			}
		}
	}
	first, err := reserve(UDP, 4)
	if err != nil {
		t.Fatal(err)
	}
	for p := first; p < first+4; p++ {
		if seen[p] {
			t.Errorf("block port %d given twice", p)
		}
	}
	if _, err := ReservePort("sctp"); err == nil {
		t.Error("unknown network accepted")
	}
}

// TestFreePortAcrossProcesses checks that another test process (this test
// binary, run again) never gets a port this one holds.
func TestFreePortAcrossProcesses(t *testing.T) {
	const n = 300
	if os.Getenv("TESTBED_PORTS_CHILD") == "1" {
		var out []string
		for range n {
			p, err := ReservePort(TCP)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strconv.Itoa(p))
		}
		os.Stdout.WriteString("PORTS " + strings.Join(out, ",") + "\n")
		return
	}
	mine := map[int]bool{}
	for range n {
		mine[FreePort(t, TCP)] = true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreePortAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTBED_PORTS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	_, list, ok := strings.Cut(string(out), "PORTS ")
	if !ok {
		t.Fatalf("child printed no ports:\n%s", out)
	}
	list, _, _ = strings.Cut(list, "\n")
	for _, s := range strings.Split(list, ",") {
		p, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		if mine[p] {
			t.Errorf("port %d given to both processes", p)
		}
	}
}

// fakeTB records what Need does instead of stopping the test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }

func TestNeed(t *testing.T) {
	t.Setenv("STOX_REQUIRE_PEERS", "")
	f := &fakeTB{TB: t}
	Need(f, "sh")
	if f.skipped != "" || f.fatal != "" {
		t.Fatalf("Need(sh): skipped %q, fatal %q", f.skipped, f.fatal)
	}
	Need(f, "sipp-not-installed-here")
	if !strings.Contains(f.skipped, `"sipp-not-installed-here"`) || f.fatal != "" {
		t.Errorf("missing program: skipped %q, fatal %q", f.skipped, f.fatal)
	}
	t.Setenv("STOX_REQUIRE_PEERS", "1")
	f = &fakeTB{TB: t}
	Need(f, "sh", "tshark-not-installed-here")
	if !strings.Contains(f.fatal, "tshark-not-installed-here") || f.skipped != "" {
		t.Errorf("missing program under STOX_REQUIRE_PEERS=1: skipped %q, fatal %q", f.skipped, f.fatal)
	}
	if pkg := debianPackage["sipp"]; pkg != "sip-tester" {
		t.Errorf("sipp comes from %q", pkg)
	}
}
