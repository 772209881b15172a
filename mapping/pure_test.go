package mapping

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPureImports holds STYLE.md's rule that mapping is pure: the non-test
// files import only these standard packages (no I/O, clock, randomness,
// goroutine machinery or logging, and no SIP/XMPP stack types).
func TestPureImports(t *testing.T) {
	allowed := map[string]bool{
		"bytes": true, "encoding/xml": true, "errors": true, "fmt": true, "io": true,
		"strconv": true, "strings": true, "unicode/utf8": true,
		"github.com/beevik/etree": true, // allowed by STYLE.md, unused so far
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] {
				t.Errorf("%s imports %s; mapping must stay pure (STYLE.md)", name, path)
			}
		}
	}
}
