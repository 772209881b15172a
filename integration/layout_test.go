package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection holds the import rule of STYLE.md: mapping is pure
// (stdlib and etree), msrp is stdlib only, sipside and msrp never import each
// other or the packages above them, and only component (and main) meet both
// worlds.
func TestDependencyDirection(t *testing.T) {
	const mod = "github.com/stox-gw/stox/"
	rules := []struct {
		pkg       string
		forbidden []string // module packages it must not depend on
		external  []string // allowed non-stdlib prefixes
	}{
		{"mapping", []string{"component", "sipside", "msrp", "examples", "integration"}, []string{"github.com/beevik/etree"}},
		{"sipside", []string{"component", "mapping", "msrp", "examples", "integration"}, []string{"github.com/emiago/sipgo", "github.com/google/uuid", "github.com/icholy/digest", "github.com/gobwas/", "golang.org/x/", "github.com/pion/"}},
		{"sipside/sdp", []string{"component", "mapping", "msrp", "sipside", "examples", "integration"}, []string{"github.com/pion/"}},
		{"msrp", []string{"component", "mapping", "sipside", "examples", "integration"}, nil},
		{"component", []string{"examples", "integration"}, []string{"github.com/", "gosrc.io/", "golang.org/x/", "nhooyr.io/"}},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "../"+r.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", r.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == mod+r.pkg {
				continue
			}
			if strings.HasPrefix(dep, mod) {
				for _, f := range r.forbidden {
					if strings.HasPrefix(dep, mod+f) {
						t.Errorf("%s depends on %s", r.pkg, dep)
					}
				}
				continue
			}
			ok := false
			for _, e := range r.external {
				ok = ok || strings.HasPrefix(dep, e)
			}
			if !ok {
				t.Errorf("%s depends on %s, outside its allowed set", r.pkg, dep)
			}
		}
	}
}
