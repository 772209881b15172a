//go:build unix

package testbed

import (
	"os"
	"os/exec"
	"testing"
)

// debianPackage names the Debian package that installs each program the
// integration tests run.
var debianPackage = map[string]string{
	"prosody":     "prosody",
	"prosodyctl":  "prosody",
	"sipp":        "sip-tester",
	"tshark":      "tshark",
	"kamailio":    "kamailio",
	"kamcmd":      "kamailio",
	"ejabberdctl": "ejabberd",
	"go":          "golang-go",
}

// Need checks that every program in bins is on $PATH. When one is missing it
// fails the test if STOX_REQUIRE_PEERS=1 (what `make test` sets, so that CI
// never passes by skipping), and otherwise skips it with a message naming the
// program and the package that installs it.
func Need(t testing.TB, bins ...string) {
	t.Helper()
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err == nil {
			continue
		}
		pkg := debianPackage[bin]
		if pkg == "" {
			pkg = bin
		}
		if os.Getenv("STOX_REQUIRE_PEERS") == "1" {
			t.Fatalf("testbed: %q is not installed (apt-get install %s) and STOX_REQUIRE_PEERS=1", bin, pkg)
			return
		}
		t.Skipf("!!! SKIPPED: this integration test needs %q, which is not installed: apt-get install %s "+
			"(or run `make test`, which installs it and sets STOX_REQUIRE_PEERS=1) !!!", bin, pkg)
		return
	}
}
