package mapping

import (
	"strings"
	"testing"
)

func TestEscapeLocal(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"", "", nil},
		{"romeo", "romeo", nil},
		{"romeo@example.net", `romeo\40example.net`, nil},             // TV-12a
		{"d'artagnan@example.net", `d\27artagnan\40example.net`, nil}, // TV-12b
		{"john doe@example.net", `john\20doe\40example.net`, nil},     // TV-12c
		{`space cadet`, `space\20cadet`, nil},
		{`call me "ishmael"`, `call\20me\20\22ishmael\22`, nil},
		{"at&t guy", `at\26t\20guy`, nil},
		{"/.fanboy", `\2f.fanboy`, nil},
		{"::foo::", `\3a\3afoo\3a\3a`, nil},
		{"<foo>", `\3cfoo\3e`, nil},
		{`c:\net`, `c\3a\net`, nil},                 // backslash kept: no code follows
		{`c:\cool stuff`, `c\3a\cool\20stuff`, nil}, // XEP-0106 example
		{`c:\5commas`, `c\3a\5c5commas`, nil},       // ADDR-11c, TV-12e
		{`\27`, `\5c27`, nil},                       // ADDR-11c
		{`\5c`, `\5c5c`, nil},
		{`\2F`, `\2F`, nil}, // upper case is not a code
		{`trailing\`, `trailing\`, nil},
		{"tschüss", "tschüss", nil},
		{" lead", "", ErrMalformedJID},  // ADDR-11b
		{"trail ", "", ErrMalformedJID}, // ADDR-11b
		{" ", "", ErrMalformedJID},
		{"tab\there", "", ErrMalformedJID},
		{"c1\u0085", "", ErrMalformedJID},
		{"bad\xff", "", ErrMalformedJID},
		{strings.Repeat("a", 1023), strings.Repeat("a", 1023), nil},
		{strings.Repeat("'", 341) + "a", "", ErrMalformedJID}, // 1024 bytes escaped (fuzz)
	}
	for _, tt := range tests {
		got, err := EscapeLocal(tt.in)
		if checkErr(t, "EscapeLocal("+tt.in+")", err, tt.err) && got != tt.want {
			t.Errorf("EscapeLocal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUnescapeLocal(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"", "", nil},
		{"romeo", "romeo", nil},
		{`romeo\40example.net`, "romeo@example.net", nil},
		{`c\3a\5c5commas`, `c:\5commas`, nil}, // TV-12e
		{`c\3a\cool\20stuff`, `c:\cool stuff`, nil},
		{`\5c27`, `\27`, nil},
		{`\5cn`, `\n`, nil}, // accepted, though not canonical
		{`\2F`, `\2F`, nil}, // only the listed lower-case sequences (ADDR-11d)
		{`\41`, `\41`, nil},
		{`a\`, `a\`, nil},
		{`a\4`, `a\4`, nil},
		{`\22\26\27\2f\3a\3c\3e\40\5c`, `"&'/:<>@\`, nil},
		{`\20x`, "", ErrMalformedJID}, // ADDR-11b
		{`x\20`, "", ErrMalformedJID},
		{"a b", "", ErrMalformedJID}, // ADDR-11e: raw forbidden characters
		{"a@b", "", ErrMalformedJID},
		{"a'b", "", ErrMalformedJID},
		{"a\x00b", "", ErrMalformedJID},
		{"a\xffb", "", ErrMalformedJID},
		{string(make([]byte, 1024)), "", ErrMalformedJID},
	}
	for _, tt := range tests {
		got, err := UnescapeLocal(tt.in)
		if checkErr(t, "UnescapeLocal("+tt.in+")", err, tt.err) && got != tt.want {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsCanonicalLocal(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"romeo", true},
		{`romeo\40example.net`, true},
		{`c\3a\5c5commas`, true},
		{`c\3a\net`, true},
		{`\5cn`, false},   // canonical form of `\n` is `\n`
		{`\5c\40`, false}, // `\@` escapes to `\\40`
		{`\\40`, true},
		{`\5c5c`, true},
		{`x\20`, false},
		{"a b", false},
		{"", true},
	}
	for _, tt := range tests {
		if got := IsCanonicalLocal(tt.in); got != tt.want {
			t.Errorf("IsCanonicalLocal(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
