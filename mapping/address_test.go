package mapping

import (
	"errors"
	"testing"
)

// testConfig is the Model B deployment of DESIGN.md.
var testConfig = AddressingConfig{
	Component:      "sip.example.com",
	ServedDomains:  []string{"example.com", "example.org"},
	ForeignDomains: true,
}

func newAddressing(t testing.TB, c AddressingConfig) *Addressing {
	t.Helper()
	a, err := NewAddressing(c)
	if err != nil {
		t.Fatalf("NewAddressing(%+v): %v", c, err)
	}
	return a
}

// checkErr fails unless err matches want (nil meaning success).
func checkErr(t *testing.T, what string, err, want error) bool {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
			return false
		}
		return true
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
	return false
}

func TestNewAddressing(t *testing.T) {
	tests := []struct {
		name      string
		cfg       AddressingConfig
		err       error
		component string
		sipDomain string
	}{
		{"defaults", testConfig, nil, "sip.example.com", "sip.example.com"},
		{"lower-cased", AddressingConfig{Component: "SIP.Example.COM", ServedDomains: []string{"Example.COM"}}, nil, "sip.example.com", "sip.example.com"},
		{"own SIP domain", AddressingConfig{Component: "sip.example.com", SIPDomain: "voip.example.net", ServedDomains: []string{"example.com"}}, nil, "sip.example.com", "voip.example.net"},
		{"empty component", AddressingConfig{ServedDomains: []string{"example.com"}}, ErrConfig, "", ""},
		{"component with port", AddressingConfig{Component: "sip.example.com:5347", ServedDomains: []string{"example.com"}}, ErrConfig, "", ""},
		{"component trailing dot", AddressingConfig{Component: "sip.example.com.", ServedDomains: []string{"example.com"}}, ErrConfig, "", ""},
		{"IDN component", AddressingConfig{Component: "sip.exämple.com", ServedDomains: []string{"example.com"}}, ErrConfig, "", ""},
		{"bad SIP domain", AddressingConfig{Component: "sip.example.com", SIPDomain: "a b", ServedDomains: []string{"example.com"}}, ErrConfig, "", ""},
		{"no served domain", AddressingConfig{Component: "sip.example.com"}, ErrConfig, "", ""},
		{"bad served domain", AddressingConfig{Component: "sip.example.com", ServedDomains: []string{"-x.com"}}, ErrConfig, "", ""},
		{"component served (loop)", AddressingConfig{Component: "sip.example.com", ServedDomains: []string{"SIP.example.com"}}, ErrConfig, "", ""},
		{"SIP domain served (loop)", AddressingConfig{Component: "sip.example.com", SIPDomain: "example.com", ServedDomains: []string{"example.com"}}, ErrConfig, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAddressing(tt.cfg)
			if !checkErr(t, "NewAddressing", err, tt.err) {
				return
			}
			if a.Component() != tt.component || a.SIPDomain() != tt.sipDomain {
				t.Errorf("Component()=%q SIPDomain()=%q, want %q %q", a.Component(), a.SIPDomain(), tt.component, tt.sipDomain)
			}
			if a.ForeignDomains() != tt.cfg.ForeignDomains {
				t.Errorf("ForeignDomains()=%v", a.ForeignDomains())
			}
		})
	}
}

func TestIsServed(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		domain string
		want   bool
	}{
		{"example.com", true},
		{"EXAMPLE.com", true},
		{"example.org", true},
		{"sip.example.com", false}, // the component is not a served XMPP domain
		{"example.net", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := a.IsServed(tt.domain); got != tt.want {
			t.Errorf("IsServed(%q) = %v, want %v", tt.domain, got, tt.want)
		}
	}
}

func TestSIPUserURI(t *testing.T) {
	a := newAddressing(t, testConfig)
	noForeign := testConfig
	noForeign.ForeignDomains = false
	b := newAddressing(t, noForeign)
	tests := []struct {
		name string
		a    *Addressing
		jid  string
		want string
		err  error
	}{
		{"own domain", a, "bob@sip.example.com", "sip:bob@sip.example.com", nil},
		{"component case-insensitive", a, "bob@SIP.Example.com", "sip:bob@sip.example.com", nil},
		{"foreign (DESIGN.md)", a, `carol\40other.net@sip.example.com`, "sip:carol@other.net", nil},
		{"last \\40 splits (DESIGN.md)", a, `a\40b\40c.org@sip.example.com`, "sip:a%40b@c.org", nil},
		{"foreign host lower-cased", a, `carol\40Other.NET@sip.example.com`, "sip:carol@other.net", nil},
		{"own domain, user with @", a, `a\40b\40sip.example.com@sip.example.com`, "sip:a%40b@sip.example.com", nil},
		{"resource -> gr (ADDR-07 step 8)", a, "bob@sip.example.com/phone", "sip:bob@sip.example.com;gr=phone", nil},
		{"gr value encoded", a, "bob@sip.example.com/a b;c", "sip:bob@sip.example.com;gr=a%20b%3Bc", nil},
		{"gr GRUU urn", a, "bob@sip.example.com/urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "sip:bob@sip.example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", nil},
		{"escapes (TV-12b reverse)", a, `d\27artagnan\40example.net@sip.example.com`, "sip:d'artagnan@example.net", nil},
		{"space (TV-12c reverse)", a, `john\20doe\40example.net@sip.example.com`, "sip:john%20doe@example.net", nil},
		{"non-ASCII", a, "tschüss@sip.example.com", "sip:tsch%C3%BCss@sip.example.com", nil},
		{"SIP reserved chars", a, `x#y%z\5c20@sip.example.com`, "sip:x%23y%25z%5C20@sip.example.com", nil},
		{"own users without foreign domains", b, "bob@sip.example.com", "sip:bob@sip.example.com", nil},
		{"own user with @ without foreign domains", b, `a\40b\40sip.example.com@sip.example.com`, "sip:a%40b@sip.example.com", nil},

		{"bare component JID", a, "sip.example.com", "", ErrNoUser},
		{"empty user before \\40", a, `\40other.net@sip.example.com`, "", ErrNoUser},
		{"not the component", a, "bob@example.com", "", ErrUnservedDomain},
		{"foreign disabled", b, `carol\40other.net@sip.example.com`, "", ErrForeignDomain},
		{"foreign host is served (loop)", a, `alice\40example.com@sip.example.com`, "", ErrLoop},
		{"foreign host is served, any case", a, `alice\40Example.COM@sip.example.com`, "", ErrLoop},
		{"own domain written foreign (not canonical)", a, `bob\40sip.example.com@sip.example.com`, "", ErrMalformedJID},
		{"bad foreign host", a, `carol\40other..net@sip.example.com`, "", ErrMalformedJID},
		{"non-canonical escape \\5cn", a, `c\5cnet@sip.example.com`, "", ErrMalformedJID},
		{"\\20 first (ADDR-11b)", a, `\20bob@sip.example.com`, "", ErrMalformedJID},
		{"raw forbidden char", a, "bo'b@sip.example.com", "", ErrMalformedJID},
		{"empty", a, "", "", ErrMalformedJID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.SIPUserURI(tt.jid)
			if checkErr(t, "SIPUserURI("+tt.jid+")", err, tt.err) && got != tt.want {
				t.Errorf("SIPUserURI(%q) = %q, want %q", tt.jid, got, tt.want)
			}
		})
	}
}

func TestSIPUserJID(t *testing.T) {
	a := newAddressing(t, testConfig)
	noForeign := testConfig
	noForeign.ForeignDomains = false
	b := newAddressing(t, noForeign)
	own := testConfig
	own.SIPDomain = "voip.example.net"
	c := newAddressing(t, own)
	tests := []struct {
		name string
		a    *Addressing
		uri  string
		want string
		err  error
	}{
		{"own domain", a, "sip:bob@sip.example.com", "bob@sip.example.com", nil},
		{"foreign (DESIGN.md)", a, "sip:carol@other.net", `carol\40other.net@sip.example.com`, nil},
		{"user with %40 (DESIGN.md)", a, "sip:a%40b@c.org", `a\40b\40c.org@sip.example.com`, nil},
		{"own domain user with %40", a, "sip:a%40b@sip.example.com", `a\40b\40sip.example.com@sip.example.com`, nil},
		{"gr -> resource (ADDR-10)", a, "sip:bob@sip.example.com;gr=phone", "bob@sip.example.com/phone", nil},
		{"gr decoded", a, "sip:bob@sip.example.com;GR=a%20b%3Bc", "bob@sip.example.com/a b;c", nil},
		{"other params, port, headers ignored", a, "SIP:bob@SIP.Example.COM:5060;transport=tcp;user=phone?subject=x", "bob@sip.example.com", nil},
		{"gr flag ignored", a, "sip:bob@sip.example.com;gr", "bob@sip.example.com", nil},
		{"im: read like sip:", a, "im:carol@other.net", `carol\40other.net@sip.example.com`, nil},
		{"pres: read like sip:", a, "pres:bob@sip.example.com", "bob@sip.example.com", nil},
		{"TV-12a", a, "sip:romeo@example.net", `romeo\40example.net@sip.example.com`, nil},
		{"TV-12b", a, "sip:d%27artagnan@example.net", `d\27artagnan\40example.net@sip.example.com`, nil},
		{"TV-12c", a, "sip:john%20doe@example.net", `john\20doe\40example.net@sip.example.com`, nil},
		{"trailing space before host is fine", a, "sip:bob%20@other.net", `bob\20\40other.net@sip.example.com`, nil},
		{"backslash before code gets \\5c", a, `sip:c%5C27@other.net`, `c\5c27\40other.net@sip.example.com`, nil},
		{"IPv4 host", a, "sip:carol@192.0.2.1", `carol\40192.0.2.1@sip.example.com`, nil},
		{"SIP domain differs from component", c, "sip:bob@voip.example.net", "bob@sip.example.com", nil},
		{"component host is foreign when SIP domain differs", c, "sip:bob@sip.example.com", `bob\40sip.example.com@sip.example.com`, nil},
		{"own user without foreign domains", b, "sip:bob@sip.example.com", "bob@sip.example.com", nil},

		{"sips (ADDR-05)", a, "sips:bob@sip.example.com", "", ErrSIPS},
		{"tel (ADDR-04)", a, "tel:+1-201-555-0123", "", ErrTel},
		{"other scheme", a, "mailto:bob@sip.example.com", "", ErrUnsupportedScheme},
		{"no user", a, "sip:sip.example.com", "", ErrNoUser},
		{"foreign disabled", b, "sip:carol@other.net", "", ErrForeignDomain},
		{"served domain posing as SIP user", a, "sip:alice@example.com", "", ErrLoop},
		{"bad escape", a, "sip:bo%zzb@sip.example.com", "", ErrMalformedURI},
		{"not UTF-8 (ADDR-06 step 4)", a, "sip:f%FF@sip.example.com", "", ErrMalformedURI},
		{"control char", a, "sip:a%0Ab@sip.example.com", "", ErrMalformedURI},
		{"leading space", a, "sip:%20bob@sip.example.com", "", ErrMalformedURI},
		{"trailing space, own domain", a, "sip:bob%20@sip.example.com", "", ErrMalformedURI},
		{"IPv6 host not mapped", a, "sip:bob@[2001:db8::1]", "", ErrMalformedURI},
		{"password", a, "sip:bob:secret@sip.example.com", "", ErrMalformedURI},
		{"two gr", a, "sip:bob@sip.example.com;gr=a;gr=b", "", ErrMalformedURI},
		{"bad gr", a, "sip:bob@sip.example.com;gr=%00", "", ErrMalformedURI},
		{"no scheme", a, "bob@sip.example.com", "", ErrMalformedURI},
		{"empty", a, "", "", ErrMalformedURI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.SIPUserJID(tt.uri)
			if checkErr(t, "SIPUserJID("+tt.uri+")", err, tt.err) && got != tt.want {
				t.Errorf("SIPUserJID(%q) = %q, want %q", tt.uri, got, tt.want)
			}
		})
	}
}

func TestXMPPUserURI(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		jid, want string
		err       error
	}{
		{"alice@example.com/phone", "sip:alice@example.com;gr=phone", nil}, // ADDR-09
		{"alice@example.com", "sip:alice@example.com", nil},
		{"juliet@example.com/yn0cl4bnw0yr3vym", "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym", nil}, // TV-01c
		{"Alice@EXAMPLE.ORG", "sip:Alice@example.org", nil},
		{`m\26m@example.com`, "sip:m&m@example.com", nil},
		{`user\40gmail.com@example.com`, "sip:user%40gmail.com@example.com", nil},
		{"alice@example.net", "", ErrUnservedDomain},
		{"bob@sip.example.com", "", ErrUnservedDomain},
		{"example.com", "", ErrNoUser},
		{`c\5cnet@example.com`, "", ErrMalformedJID},
		{"a@b@example.com", "", ErrMalformedJID},
	}
	for _, tt := range tests {
		got, err := a.XMPPUserURI(tt.jid)
		if checkErr(t, "XMPPUserURI("+tt.jid+")", err, tt.err) && got != tt.want {
			t.Errorf("XMPPUserURI(%q) = %q, want %q", tt.jid, got, tt.want)
		}
	}
}

func TestXMPPUserJID(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		uri, want string
		err       error
	}{
		{"sip:juliet@example.com", "juliet@example.com", nil},
		{"sip:juliet@example.com;gr=yn0cl4bnw0yr3vym", "juliet@example.com/yn0cl4bnw0yr3vym", nil},
		{"sip:juliet@Example.COM:5060;transport=udp", "juliet@example.com", nil},
		{"sip:m&m@example.com", `m\26m@example.com`, nil},
		{"sip:user%40gmail.com@example.com", `user\40gmail.com@example.com`, nil},
		{"sip:o'malley@example.org", `o\27malley@example.org`, nil},
		{"sips:juliet@example.com", "", ErrSIPS},          // ADDR-05, TV-40
		{"tel:+15551234", "", ErrTel},                     // ADDR-04
		{"sip:juliet@example.net", "", ErrUnservedDomain}, // not an open relay
		{"sip:example.com", "", ErrNoUser},
		{"sip:%20x@example.com", "", ErrMalformedURI},
		{"sip:juliet@exa mple.com", "", ErrMalformedURI},
	}
	for _, tt := range tests {
		got, err := a.XMPPUserJID(tt.uri)
		if checkErr(t, "XMPPUserJID("+tt.uri+")", err, tt.err) && got != tt.want {
			t.Errorf("XMPPUserJID(%q) = %q, want %q", tt.uri, got, tt.want)
		}
	}
}

func TestJIDForURI(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		uri, want string
		err       error
	}{
		{"sip:alice@example.com", "alice@example.com", nil},
		{"sip:bob@sip.example.com", "bob@sip.example.com", nil},
		{"sip:carol@other.net;gr=x", `carol\40other.net@sip.example.com/x`, nil},
		{"sips:carol@other.net", "", ErrSIPS},
		{"junk", "", ErrMalformedURI},
	}
	for _, tt := range tests {
		got, err := a.JIDForURI(tt.uri)
		if checkErr(t, "JIDForURI("+tt.uri+")", err, tt.err) && got != tt.want {
			t.Errorf("JIDForURI(%q) = %q, want %q", tt.uri, got, tt.want)
		}
	}
}

func TestURIForJID(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		jid, want string
		err       error
	}{
		{"alice@example.com/x", "sip:alice@example.com;gr=x", nil},
		{"bob@sip.example.com", "sip:bob@sip.example.com", nil},
		{`carol\40other.net@sip.example.com`, "sip:carol@other.net", nil},
		{"someone@jabber.example", "", ErrUnservedDomain},
		{"@x", "", ErrMalformedJID},
	}
	for _, tt := range tests {
		got, err := a.URIForJID(tt.jid)
		if checkErr(t, "URIForJID("+tt.jid+")", err, tt.err) && got != tt.want {
			t.Errorf("URIForJID(%q) = %q, want %q", tt.jid, got, tt.want)
		}
	}
}

func TestPromptJID(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		prompt, want string
		err          error
	}{
		{"romeo@example.net", `romeo\40example.net@sip.example.com`, nil}, // TV-13
		{"  romeo@Example.NET ", `romeo\40example.net@sip.example.com`, nil},
		{"sip:romeo@example.net", `romeo\40example.net@sip.example.com`, nil},
		{"john doe@example.net", `john\20doe\40example.net@sip.example.com`, nil},
		{"100%@example.net", `100%\40example.net@sip.example.com`, nil}, // literal, not decoded
		{"bob", "bob@sip.example.com", nil},
		{"bob@sip.example.com", "bob@sip.example.com", nil},
		{"sips:romeo@example.net", "", ErrSIPS},
		{"alice@example.com", "", ErrLoop},
		{"romeo@", "", ErrMalformedURI},
		{"", "", ErrNoUser},
	}
	for _, tt := range tests {
		got, err := a.PromptJID(tt.prompt)
		if checkErr(t, "PromptJID("+tt.prompt+")", err, tt.err) && got != tt.want {
			t.Errorf("PromptJID(%q) = %q, want %q", tt.prompt, got, tt.want)
		}
	}
}

func TestJIDFromSIPURI(t *testing.T) {
	tests := []struct {
		uri, want string
		err       error
	}{
		{"sip:f%C3%BC@sip.example", "fü@sip.example", nil},          // TV-10a
		{"sip:o'malley@sip.example", `o\27malley@sip.example`, nil}, // TV-10b
		{"sip:foo@sip.example;gr=bar", "foo@sip.example/bar", nil},  // TV-10c
		{"sip:a/b&c@X.Example", `a\2fb\26c@x.example`, nil},         // ADDR-06 step 5
		{"im:romeo@example.net", "romeo@example.net", nil},
		{"sips:foo@sip.example", "", ErrSIPS},
		{"tel:+1234", "", ErrTel},
		{"sip:sip.example", "", ErrNoUser},
		{"sip:%C3@sip.example", "", ErrMalformedURI},
	}
	for _, tt := range tests {
		got, err := JIDFromSIPURI(tt.uri)
		if checkErr(t, "JIDFromSIPURI("+tt.uri+")", err, tt.err) && got != tt.want {
			t.Errorf("JIDFromSIPURI(%q) = %q, want %q", tt.uri, got, tt.want)
		}
	}
}

func TestSIPURIFromJID(t *testing.T) {
	tests := []struct {
		jid, want string
		err       error
	}{
		{`m\26m@xmpp.example`, "sip:m&m@xmpp.example", nil},                   // TV-11a
		{"tschüss@xmpp.example", "sip:tsch%C3%BCss@xmpp.example", nil},        // TV-11b
		{"baz@xmpp.example/qux", "sip:baz@xmpp.example;gr=qux", nil},          // TV-11c
		{"baz@xmpp.example/ré s", "sip:baz@xmpp.example;gr=r%C3%A9%20s", nil}, // ADDR-07 step 8
		{`a\2fb@xmpp.example`, "sip:a/b@xmpp.example", nil},
		{"xmpp.example", "", ErrNoUser},
		{"a@b@xmpp.example", "", ErrMalformedJID},
	}
	for _, tt := range tests {
		got, err := SIPURIFromJID(tt.jid)
		if checkErr(t, "SIPURIFromJID("+tt.jid+")", err, tt.err) && got != tt.want {
			t.Errorf("SIPURIFromJID(%q) = %q, want %q", tt.jid, got, tt.want)
		}
	}
}
