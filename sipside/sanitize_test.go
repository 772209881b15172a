package sipside

import (
	"errors"
	"testing"
)

// Content-Language = language-tag *("," language-tag) (RFC 3261 §20.13),
// subtags of 1-8 letters or digits.
func TestCheckLanguage(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"en", true},
		{"en-GB", true},
		{"fr, en-US", true},
		{"i-klingon,de-1901", true},
		{"zh-Hant-TW", true},
		{"", false},
		{"en,", false},
		{",en", false},
		{"en-", false},
		{"-en", false},
		{"en--GB", false},
		{"abcdefghi", false}, // a subtag of 9
		{"en_GB", false},
		{"en;q=1", false},
		{"en\r\nX-Injected: 1", false},
	} {
		err := checkLanguage(tc.s)
		if (err == nil) != tc.ok {
			t.Errorf("checkLanguage(%q) = %v, want ok=%v", tc.s, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrHeaderValue) {
			t.Errorf("checkLanguage(%q) = %v, not ErrHeaderValue", tc.s, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = checkLanguage("fr, en-US") }); n != 0 {
		t.Errorf("checkLanguage allocates %.0f times", n)
	}
}

func TestTokenShape(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := token()
		if len(tok) != 26 || seen[tok] {
			t.Fatalf("token %q (length %d, seen before: %v)", tok, len(tok), seen[tok])
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
				t.Fatalf("token %q has %q", tok, c)
			}
		}
		seen[tok] = true
	}
	if n := testing.AllocsPerRun(100, func() { _ = token() }); n != 1 {
		t.Errorf("token allocates %.0f times, want 1", n)
	}
}
