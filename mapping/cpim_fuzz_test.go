package mapping

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzCPIM: whatever ParseCPIM accepts, Marshal writes, and parsing that
// gives the same value; a second Marshal gives the same bytes. Errors wrap
// ErrBadCPIM or ErrCPIMTooBig. The From accessor and the anti-spoofing
// check never panic on accepted input.
func FuzzCPIM(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "cpim", "*.txt"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add(benchCPIM)
	f.Add([]byte("From: <sip:a@b.c>\nTo: <sip:d@e.f>\n\nContent-Type: text/plain\n\nhello"))
	f.Add([]byte("X:;a=\"b\\\"c\";n=1 v\\u0041\r\nNS: <urn:d>\r\nY: z\r\n\r\nA: b\r\n\tc\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseCPIM(in)
		if err != nil {
			if !errors.Is(err, ErrBadCPIM) && !errors.Is(err, ErrCPIMTooBig) {
				t.Fatalf("ParseCPIM error %v wraps no CPIM sentinel", err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed message: %v\n%+v", err, m)
		}
		m2, err := ParseCPIM(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message\n%+v\n%+v", m, m2)
		}
		out2, err := m2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second Marshal differs: %v\n%q\n%q", err, out, out2)
		}
		if !bytes.HasSuffix(in, m.Body) || !bytes.HasSuffix(out, m.Body) {
			t.Fatalf("body not kept")
		}
		if from, ok := m.From(); ok {
			if _, err := ParseURI(from.URI); err == nil && !CPIMFromMatches(from.String(), from.URI) {
				t.Fatalf("a parseable From %q does not match itself", from.URI)
			}
		}
		for _, s := range m.Subjects() {
			if s.Lang != "" && !validLangTag(s.Lang) {
				t.Fatalf("Subject lang %q", s.Lang)
			}
		}
	})
}

// FuzzCPIMEscape: CPIMUnescape inverts CPIMEscape for any string, and the
// escaped form holds no control character (no header injection).
func FuzzCPIMEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "a\r\nb", `\u0041\`, "été\x00\x7f", `"q"`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := CPIMEscape(s)
		if got := CPIMUnescape(e); got != s {
			t.Fatalf("CPIMUnescape(CPIMEscape(%q)) = %q via %q", s, got, e)
		}
		for i := 0; i < len(e); i++ {
			if c := e[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("control character in %q", e)
			}
		}
		if utf8.ValidString(s) {
			var m CPIMMessage
			m.AddText("", "Subject", s)
			m.AddAddress("From", CPIMAddress{Name: s, URI: "sip:a@b.c"})
			out, err := m.Marshal()
			if errors.Is(err, ErrCPIMTooBig) {
				from := CPIMAddress{Name: s, URI: "sip:a@b.c"}.String()
				if len("Subject: ")+len(e) <= CPIMMaxLine && len("From: ")+len(from) <= CPIMMaxLine {
					t.Fatalf("ErrCPIMTooBig for lines within the limit: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Marshal of escaped text: %v", err)
			}
			m2, err := ParseCPIM(out)
			if err != nil {
				t.Fatalf("ParseCPIM: %v\n%q", err, out)
			}
			if subj := m2.Subjects(); len(subj) != 1 || subj[0].Text != s {
				t.Fatalf("Subject %q came back as %+q", s, subj)
			}
			if from, ok := m2.From(); !ok || from.Name != s {
				t.Fatalf("display name %q came back as %+v", s, from)
			}
		}
	})
}
