package msrp

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in   string
		want URL
		out  string // String(); "" means in
	}{
		{"msrp://x2s.example.com:8763/lkjh37s2s20w2a;tcp", URL{Host: "x2s.example.com", Port: 8763, SessionID: "lkjh37s2s20w2a", Transport: "tcp"}, ""},
		{"msrps://bob.example.net:2855/9fpnwh3d;tcp", URL{Secure: true, Host: "bob.example.net", Port: 2855, SessionID: "9fpnwh3d", Transport: "tcp"}, ""},
		{"MSRP://Host.Example.COM:1/a+b=c/d;TCP", URL{Host: "Host.Example.COM", Port: 1, SessionID: "a+b=c/d", Transport: "TCP"}, "msrp://Host.Example.COM:1/a+b=c/d;TCP"},
		{"msrp://relay.example.net;tcp", URL{Host: "relay.example.net", Transport: "tcp"}, ""},
		{"msrp://[2001:db8::1]:2855/s1;tcp", URL{Host: "2001:db8::1", Port: 2855, SessionID: "s1", Transport: "tcp"}, ""},
		{"msrp://alice@192.0.2.1:7777/s1;tcp;foo=bar;baz", URL{User: "alice", Host: "192.0.2.1", Port: 7777, SessionID: "s1", Transport: "tcp", Params: []string{"foo=bar", "baz"}}, ""},
	}
	for _, c := range cases {
		got, err := ParseURL(c.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseURL(%q)\n got %#v\nwant %#v", c.in, got, c.want)
		}
		out := c.out
		if out == "" {
			out = c.in
		}
		if got.String() != out {
			t.Errorf("String() = %q, want %q", got.String(), out)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", c.in, err)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, in := range []string{
		"", "msrp:", "http://x/s;tcp", "msrp://x/s", "msrp://x/s;", "msrp://:1/s;tcp", "msrp://x:/s;tcp",
		"msrp://x:0/s;tcp", "msrp://x:65536/s;tcp", "msrp://x:02855/s;tcp", "msrp://x/;tcp", "msrp://x/a b;tcp",
		"msrp://x/s%41;tcp", "msrp://[::1/s;tcp", "msrp://[fe80::1%25eth0]/s;tcp", "msrp://[zz]/s;tcp",
		"msrp://@x/s;tcp", "msrp://x/s;t-p", "msrp://x/s;tcp;=v", "msrp://x/s;tcp;a=", "msrp://x y/s;tcp",
		"msrp://x/s;tcp;", "msrp://[::1]x/s;tcp",
	} {
		if _, err := ParseURL(in); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("ParseURL(%q) = %v, want ErrInvalidURL", in, err)
		}
	}
}

// TestURLEqual: CHAT-11, TV-28b.
func TestURLEqual(t *testing.T) {
	base := "msrp://x2s.example.com:8763/lkjh37s2s20w2a;tcp"
	cases := []struct {
		other string
		equal bool
	}{
		{"msrp://X2S.Example.COM:8763/lkjh37s2s20w2a;tcp", true},  // host without case
		{"MSRP://x2s.example.com:8763/lkjh37s2s20w2a;TCP", true},  // scheme, transport without case
		{"msrp://x2s.example.com:8763/LKJH37s2s20w2a;tcp", false}, // TV-28b: session-id with case
		{"msrp://x2s.example.com:8764/lkjh37s2s20w2a;tcp", false},
		{"msrps://x2s.example.com:8763/lkjh37s2s20w2a;tcp", false},
		{"msrp://x2s.example.com:8763/lkjh37s2s20w2a;tcp;x=y", true}, // parameters ignored
		{"msrp://user@x2s.example.com:8763/lkjh37s2s20w2a;tcp", true},
		{"msrp://x2s.example.com:8763/lkjh37s2s20w2a;sctp", false},
	}
	a := u(base)
	for _, c := range cases {
		if got := a.Equal(u(c.other)); got != c.equal {
			t.Errorf("Equal(%s, %s) = %v", base, c.other, got)
		}
	}
	if !u("msrp://h/s;tcp").Equal(u("msrp://h:2855/s;tcp")) {
		t.Error("an absent port is 2855")
	}
	if !u("msrp://[2001:db8::1]:1/s;tcp").Equal(u("msrp://[2001:DB8:0::1]:1/s;tcp")) {
		t.Error("IPv6 spellings")
	}
	if got := u("msrp://[::1]/s;tcp").Address(); got != "[::1]:2855" {
		t.Errorf("Address() = %q", got)
	}
}

func TestPath(t *testing.T) {
	s := "msrps://relay.example.net:2855/aweif2c3;tcp msrps://bob.example.net:2855/9fpnwh3d;tcp"
	p, err := ParsePath(s)
	if err != nil || len(p) != 2 {
		t.Fatalf("ParsePath: %v %v", p, err)
	}
	if FormatPath(p) != s {
		t.Errorf("FormatPath = %q", FormatPath(p))
	}
	if _, err := ParsePath("  "); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := ParsePath("msrp://a/s;tcp bogus"); err == nil {
		t.Error("bad URL in a path accepted")
	}
}

func TestURLValidate(t *testing.T) {
	for _, bad := range []URL{
		{Host: "x", Transport: ""},
		{Host: "x y", Transport: "tcp"},
		{Host: "x", Port: 70000, Transport: "tcp"},
		{Host: "x", SessionID: "a;b", Transport: "tcp"},
		{Host: "x", Transport: "tcp", Params: []string{""}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%#v) = nil", bad)
		}
	}
}
