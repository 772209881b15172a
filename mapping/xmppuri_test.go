package mapping

import "testing"

func TestXMPPURI(t *testing.T) {
	tests := []struct{ jid, want string }{
		{"romeo@example.org", "xmpp:romeo@example.org"}, // TV-08e
		{"example.org", "xmpp:example.org"},
		{"romeo@example.org/orchard", "xmpp:romeo@example.org/orchard"},
		{`carol\40other.net@sip.example.com`, "xmpp:carol%5C40other.net@sip.example.com"},
		{"fü@example.org/a b:c", "xmpp:f%C3%BC@example.org/a%20b:c"},
		{"a#b?c@example.org", "xmpp:a%23b%3Fc@example.org"},
	}
	for _, tt := range tests {
		if got := XMPPURI(tt.jid); got != tt.want {
			t.Errorf("XMPPURI(%q) = %q, want %q", tt.jid, got, tt.want)
		}
	}
}

func TestJIDFromXMPPURI(t *testing.T) {
	tests := []struct {
		uri, want string
		err       error
	}{
		{"xmpp:romeo@example.org", "romeo@example.org", nil},
		{"XMPP:romeo@Example.ORG/orchard", "romeo@example.org/orchard", nil},
		{"xmpp:carol%5C40other.net@sip.example.com", `carol\40other.net@sip.example.com`, nil},
		{"xmpp:f%C3%BC@example.org/a%2Fb", "fü@example.org/a/b", nil},
		{"xmpp:romeo@example.org?message;body=hi", "romeo@example.org", nil},
		{"xmpp:example.org", "example.org", nil},
		{"sip:romeo@example.org", "", ErrMalformedURI},
		{"xmpp://guest@example.com/romeo@example.org", "", ErrMalformedURI},
		{"xmpp:ro%zzmeo@example.org", "", ErrMalformedURI},
		{"xmpp:ro%40meo@example.org", "", ErrMalformedJID},
		{"xmpp:@example.org", "", ErrMalformedJID},
		{"xmpp:romeo@", "", ErrMalformedJID},
		{"xmpp:romeo@example.org/", "", ErrMalformedJID},
		{"xmpp:romeo@example.org/%00", "", ErrMalformedJID},
	}
	for _, tt := range tests {
		got, err := JIDFromXMPPURI(tt.uri)
		if checkErr(t, "JIDFromXMPPURI("+tt.uri+")", err, tt.err) && got != tt.want {
			t.Errorf("JIDFromXMPPURI(%q) = %q, want %q", tt.uri, got, tt.want)
		}
	}
}
