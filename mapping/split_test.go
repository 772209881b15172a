package mapping

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitUTF8(t *testing.T) {
	tests := []struct {
		name string
		body string
		max  int
		want []string
	}{
		{"empty", "", 10, nil},
		{"fits", "hello", 10, []string{"hello"}},
		{"exact", "hello", 5, []string{"hello"}},
		{"ascii", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"2-byte not cut (IM-12c)", "aéé", 4, []string{"aé", "é"}},
		{"3-byte not cut", "ab€€", 4, []string{"ab", "€", "€"}},
		{"4-byte not cut", "a👋b", 4, []string{"a", "👋", "b"}},
		{"4-byte not cut, 5", "a👋b", 5, []string{"a👋", "b"}},
		{"4-byte runs", "👋👋👋", 5, []string{"👋", "👋", "👋"}},
		{"max below UTFMax raised", "👋👋", 1, []string{"👋", "👋"}},
		{"max zero", "abcdef", 0, []string{"abcd", "ef"}},
		{"invalid bytes cut at max", "\x80\x80\x80\x80\x80\x80", 4, []string{"\x80\x80\x80\x80", "\x80\x80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitUTF8([]byte(tt.body), tt.max)
			if len(got) != len(tt.want) {
				t.Fatalf("SplitUTF8(%q, %d) = %q, want %q", tt.body, tt.max, got, tt.want)
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("SplitUTF8(%q, %d)[%d] = %q, want %q", tt.body, tt.max, i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestSplitUTF8TV06: TV-06b, a 2000-octet body in chunks that each fit a
// 1300-byte request, joined back equal to the original.
func TestSplitUTF8TV06(t *testing.T) {
	body := []byte(strings.Repeat("0123456789", 200))
	parts := SplitUTF8(body, 900) // 1300 minus a generous header budget
	if len(parts) < 2 {
		t.Fatalf("got %d parts, want >= 2", len(parts))
	}
	for _, p := range parts {
		if len(p) > 900 || !utf8.Valid(p) {
			t.Errorf("bad part of %d bytes", len(p))
		}
	}
	if !bytes.Equal(bytes.Join(parts, nil), body) {
		t.Error("parts do not join back to the body")
	}
	// Appending to a part must not overwrite the next one.
	parts[0] = append(parts[0], 'X')
	if parts[1][0] == 'X' {
		t.Error("parts share capacity")
	}
}
