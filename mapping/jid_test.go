package mapping

import (
	"strings"
	"testing"
)

func TestParseJID(t *testing.T) {
	long := strings.Repeat("a", 1023)
	tests := []struct {
		in   string
		want JID
		err  error
	}{
		{"example.com", JID{Domain: "example.com"}, nil},
		{"juliet@example.com", JID{"juliet", "example.com", ""}, nil},
		{"juliet@Example.COM/Yn0", JID{"juliet", "example.com", "Yn0"}, nil},
		{"juliet@example.com/a/b@c d", JID{"juliet", "example.com", "a/b@c d"}, nil}, // first '/' starts the resource
		{`romeo\40example.net@sip.gw.example`, JID{`romeo\40example.net`, "sip.gw.example", ""}, nil},
		{"fü@sip.example", JID{"fü", "sip.example", ""}, nil},
		{"example.com/res", JID{"", "example.com", "res"}, nil},
		{long + "@example.com/" + long, JID{long, "example.com", long}, nil},
		{"192.0.2.1", JID{Domain: "192.0.2.1"}, nil},

		{"", JID{}, ErrMalformedJID},
		{"@example.com", JID{}, ErrMalformedJID},
		{"juliet@", JID{}, ErrMalformedJID},
		{"juliet@example.com/", JID{}, ErrMalformedJID},
		{"a@b@example.com", JID{}, ErrMalformedJID},
		{"jul iet@example.com", JID{}, ErrMalformedJID},
		{`ju"liet@example.com`, JID{}, ErrMalformedJID},
		{"ju:liet@example.com", JID{}, ErrMalformedJID},
		{"ju<liet@example.com", JID{}, ErrMalformedJID},
		{"juliet@exa mple.com", JID{}, ErrMalformedJID},
		{"juliet@example.com.", JID{}, ErrMalformedJID},
		{"juliet@exämple.com", JID{}, ErrMalformedJID}, // no IDN
		{"juliet@[::1]", JID{}, ErrMalformedJID},
		{"juliet@example.com/a\x00", JID{}, ErrMalformedJID},
		{"juliet@example.com/\xff", JID{}, ErrMalformedJID},
		{long + "a@example.com", JID{}, ErrMalformedJID},
		{"a@example.com/" + long + "a", JID{}, ErrMalformedJID},
	}
	for _, tt := range tests {
		got, err := ParseJID(tt.in)
		if checkErr(t, "ParseJID("+tt.in+")", err, tt.err) && got != tt.want {
			t.Errorf("ParseJID(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestJIDString(t *testing.T) {
	tests := []struct {
		j    JID
		want string
	}{
		{JID{Domain: "example.com"}, "example.com"},
		{JID{"a", "example.com", ""}, "a@example.com"},
		{JID{"a", "example.com", "r"}, "a@example.com/r"},
		{JID{"", "example.com", "r"}, "example.com/r"},
	}
	for _, tt := range tests {
		if got := tt.j.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.j, got, tt.want)
		}
	}
}

func TestJIDBare(t *testing.T) {
	tests := []struct{ j, want JID }{
		{JID{"a", "example.com", "r"}, JID{"a", "example.com", ""}},
		{JID{"", "example.com", "r"}, JID{"", "example.com", ""}},
		{JID{"a", "example.com", ""}, JID{"a", "example.com", ""}},
	}
	for _, tt := range tests {
		if got := tt.j.Bare(); got != tt.want {
			t.Errorf("%+v.Bare() = %+v, want %+v", tt.j, got, tt.want)
		}
	}
}
