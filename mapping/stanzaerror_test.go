package mapping

import (
	"strconv"
	"testing"
)

// TestErrorForSIP covers every row of CHECKLIST 2.2 (RFC 7247 7.2 Table 3)
// and the class fallback (TV-07, TV-08).
func TestErrorForSIP(t *testing.T) {
	tests := []struct {
		code      int
		cond, typ string
	}{
		{300, "redirect", "modify"},
		{302, "redirect", "modify"},
		{305, "redirect", "modify"},
		{380, "not-acceptable", "modify"},
		{400, "bad-request", "modify"},
		{401, "not-authorized", "auth"},
		{402, "bad-request", "modify"}, // TV-08g
		{403, "forbidden", "auth"},
		{404, "item-not-found", "cancel"}, // TV-07
		{405, "feature-not-implemented", "cancel"},
		{406, "not-acceptable", "modify"},
		{407, "registration-required", "auth"},
		{408, "remote-server-timeout", "wait"},
		{410, "gone", "cancel"}, // TV-08d
		{413, "policy-violation", "modify"},
		{414, "policy-violation", "modify"},
		{415, "not-acceptable", "modify"},
		{416, "not-acceptable", "modify"},
		{420, "feature-not-implemented", "cancel"},
		{421, "not-acceptable", "modify"},
		{423, "resource-constraint", "wait"},
		{430, "recipient-unavailable", "wait"},
		{439, "feature-not-implemented", "cancel"},
		{440, "policy-violation", "modify"},
		{480, "recipient-unavailable", "wait"},
		{481, "item-not-found", "cancel"},
		{482, "not-acceptable", "modify"},
		{483, "not-acceptable", "modify"},
		{484, "item-not-found", "cancel"},
		{485, "item-not-found", "cancel"},
		{486, "recipient-unavailable", "wait"}, // TV-08b
		{487, "recipient-unavailable", "wait"},
		{488, "not-acceptable", "modify"}, // TV-08f
		{489, "policy-violation", "modify"},
		{491, "unexpected-request", "wait"},
		{493, "bad-request", "modify"},
		{500, "internal-server-error", "cancel"},
		{501, "feature-not-implemented", "cancel"},
		{502, "remote-server-not-found", "cancel"},
		{503, "internal-server-error", "cancel"}, // TV-08a: never service-unavailable
		{504, "remote-server-timeout", "wait"},
		{505, "not-acceptable", "modify"},
		{513, "policy-violation", "modify"},
		{600, "recipient-unavailable", "wait"},
		{603, "recipient-unavailable", "wait"}, // TV-08c
		{604, "item-not-found", "cancel"},
		{606, "not-acceptable", "modify"},
		// Class fallback (SHOULD), TV-08.
		{399, "redirect", "modify"},
		{499, "bad-request", "modify"},
		{599, "internal-server-error", "cancel"},
		{699, "recipient-unavailable", "wait"},
		// 1xx/2xx have no counterpart (ERR-01).
		{100, "undefined-condition", "cancel"},
		{200, "undefined-condition", "cancel"},
		{0, "undefined-condition", "cancel"},
		{700, "undefined-condition", "cancel"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			e := ErrorForSIP(tt.code, "Some Reason", "")
			if e.Condition != tt.cond || e.Type != tt.typ || e.Text != "Some Reason" || e.Gone != "" {
				t.Errorf("ErrorForSIP(%d) = %+v, want %s/%s", tt.code, e, tt.typ, tt.cond)
			}
		})
	}
}

// TestErrorForSIP301 covers the 301 and 410 MUST rules (TV-08d, TV-08e).
func TestErrorForSIP301(t *testing.T) {
	tests := []struct {
		name, contact, cond, gone string
	}{
		{"TV-08e", "sip:romeo@example.org", "gone", "xmpp:romeo@example.org"},
		{"angle brackets", "<sip:romeo@example.org>", "gone", "xmpp:romeo@example.org"},
		{"name-addr with params", `"Romeo" <sip:romeo@example.org;gr=x>;q=0.7`, "gone", "xmpp:romeo@example.org/x"},
		{"xmpp contact", "<xmpp:romeo@example.org>", "gone", "xmpp:romeo@example.org"},
		{"escaped user", "sip:o'malley@example.org", "gone", "xmpp:o%5C27malley@example.org"},
		{"no contact: redirect", "", "redirect", ""},
		{"unusable contact: redirect", "tel:+1234", "redirect", ""},
		{"sips contact: redirect", "sips:romeo@example.org", "redirect", ""},
		{"unterminated <", "<sip:romeo@example.org", "redirect", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ErrorForSIP(301, "Moved Permanently", tt.contact)
			if e.Condition != tt.cond || e.Gone != tt.gone || e.Type != "cancel" && e.Type != "modify" {
				t.Errorf("ErrorForSIP(301, %q) = %+v, want %s %q", tt.contact, e, tt.cond, tt.gone)
			}
		})
	}
	if e := ErrorForSIP(410, "Gone", "sip:romeo@example.org"); e.Gone != "" {
		t.Errorf("410 must not carry an address: %+v", e)
	}
}

func TestAddressingErrorForSIP(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		code       int
		contact    string
		cond, gone string
	}{
		{301, "sip:carol@other.net", "gone", `xmpp:carol%5C40other.net@sip.example.com`},
		{301, "<sip:alice@example.com;gr=x>", "gone", "xmpp:alice@example.com/x"},
		{301, "sip:bob@sip.example.com", "gone", "xmpp:bob@sip.example.com"},
		{301, "sips:bob@sip.example.com", "redirect", ""},
		{404, "", "item-not-found", ""},
	}
	for _, tt := range tests {
		e := a.ErrorForSIP(tt.code, "", tt.contact)
		if e.Condition != tt.cond || e.Gone != tt.gone {
			t.Errorf("ErrorForSIP(%d, %q) = %+v, want %s %q", tt.code, tt.contact, e, tt.cond, tt.gone)
		}
	}
}

func TestErrorForTimeout(t *testing.T) {
	want := StanzaError{Type: "wait", Condition: "remote-server-timeout"} // ERR-04, TV-08
	if got := ErrorForTimeout(); got != want {
		t.Errorf("ErrorForTimeout() = %+v, want %+v", got, want)
	}
}

// TestErrorTypeFor covers column 1 of CHECKLIST 2.1 (ERR-05).
func TestErrorTypeFor(t *testing.T) {
	tests := []struct{ cond, typ string }{
		{"bad-request", "modify"},
		{"conflict", "cancel"},
		{"feature-not-implemented", "cancel"},
		{"forbidden", "auth"},
		{"gone", "cancel"},
		{"internal-server-error", "cancel"},
		{"item-not-found", "cancel"},
		{"jid-malformed", "modify"},
		{"not-acceptable", "modify"},
		{"not-allowed", "cancel"},
		{"not-authorized", "auth"},
		{"policy-violation", "modify"},
		{"recipient-unavailable", "wait"},
		{"redirect", "modify"},
		{"registration-required", "auth"},
		{"remote-server-not-found", "cancel"},
		{"remote-server-timeout", "wait"},
		{"resource-constraint", "wait"},
		{"service-unavailable", "cancel"},
		{"subscription-required", "auth"},
		{"undefined-condition", "cancel"},
		{"unexpected-request", "wait"},
		{"no-such-condition", "cancel"},
	}
	for _, tt := range tests {
		if got := ErrorTypeFor(tt.cond); got != tt.typ {
			t.Errorf("ErrorTypeFor(%q) = %q, want %q", tt.cond, got, tt.typ)
		}
	}
}

// TestSIPStatusForError covers every row of CHECKLIST 2.1 (RFC 7247 7.1
// Table 2) and TV-09.
func TestSIPStatusForError(t *testing.T) {
	tests := []struct {
		cond       string
		full, bare int
	}{
		{"bad-request", 400, 400},
		{"conflict", 400, 400},
		{"feature-not-implemented", 405, 501}, // TV-09c
		{"forbidden", 403, 603},               // TV-09b
		{"gone", 410, 410},                    // TV-09e, no address
		{"internal-server-error", 500, 500},
		{"item-not-found", 404, 604}, // TV-09a
		{"jid-malformed", 400, 400},
		{"not-acceptable", 406, 606},
		{"not-allowed", 403, 403},
		{"not-authorized", 401, 401},
		{"policy-violation", 403, 403},
		{"recipient-unavailable", 480, 600},
		{"redirect", 302, 302},
		{"registration-required", 407, 407},
		{"remote-server-not-found", 404, 404}, // TV-09f: domain existence unknown
		{"remote-server-timeout", 408, 408},
		{"resource-constraint", 500, 500},
		{"service-unavailable", 403, 403}, // TV-09d: not 503
		{"subscription-required", 400, 400},
		{"undefined-condition", 400, 400},
		{"unexpected-request", 491, 491}, // TV-09g
		{"no-such-condition", 400, 400},
	}
	for _, tt := range tests {
		e := StanzaError{Type: ErrorTypeFor(tt.cond), Condition: tt.cond}
		if code, contact := SIPStatusForError(e, true); code != tt.full || contact != "" {
			t.Errorf("SIPStatusForError(%s, full) = %d %q, want %d", tt.cond, code, contact, tt.full)
		}
		if code, contact := SIPStatusForError(e, false); code != tt.bare || contact != "" {
			t.Errorf("SIPStatusForError(%s, bare) = %d %q, want %d", tt.cond, code, contact, tt.bare)
		}
	}
}

func TestSIPStatusForErrorGone(t *testing.T) {
	tests := []struct {
		gone    string
		code    int
		contact string
	}{
		{"xmpp:new@example.com", 301, "sip:new@example.com"}, // TV-09e
		{" xmpp:new@example.com/r ", 301, "sip:new@example.com;gr=r"},
		{"xmpp:fü@example.com", 301, "sip:f%C3%BC@example.com"},
		{"", 410, ""},
		{"new@example.com", 410, ""},  // not an xmpp: URI
		{"xmpp:example.com", 410, ""}, // no user to address
		{"xmpp:a%40b@example.com", 410, ""},
	}
	for _, tt := range tests {
		e := StanzaError{Type: "cancel", Condition: "gone", Gone: tt.gone}
		for _, full := range []bool{true, false} {
			code, contact := SIPStatusForError(e, full)
			if code != tt.code || contact != tt.contact {
				t.Errorf("SIPStatusForError(gone %q) = %d %q, want %d %q", tt.gone, code, contact, tt.code, tt.contact)
			}
		}
	}
}

func TestAddressingSIPStatusForError(t *testing.T) {
	a := newAddressing(t, testConfig)
	tests := []struct {
		e       StanzaError
		code    int
		contact string
	}{
		{StanzaError{Condition: "gone", Gone: `xmpp:carol%5C40other.net@sip.example.com`}, 301, "sip:carol@other.net"},
		{StanzaError{Condition: "gone", Gone: "xmpp:new@example.com"}, 301, "sip:new@example.com"},
		{StanzaError{Condition: "gone", Gone: "xmpp:new@jabber.example"}, 410, ""}, // not reachable through us
		{StanzaError{Condition: "item-not-found"}, 604, ""},
	}
	for _, tt := range tests {
		code, contact := a.SIPStatusForError(tt.e, false)
		if code != tt.code || contact != tt.contact {
			t.Errorf("SIPStatusForError(%+v) = %d %q, want %d %q", tt.e, code, contact, tt.code, tt.contact)
		}
	}
}

// TestErrorForMSRP covers ERR-06.
func TestErrorForMSRP(t *testing.T) {
	tests := []struct {
		code     int
		nickname bool
		cond     string
	}{
		{400, false, "bad-request"},
		{403, false, "forbidden"},
		{408, false, "remote-server-timeout"},
		{413, false, "policy-violation"},
		{415, false, "not-acceptable"},
		{481, false, "item-not-found"},
		{501, false, "feature-not-implemented"},
		{506, false, "internal-server-error"},
		{404, false, "item-not-found"},
		{428, false, "feature-not-implemented"},
		{425, true, "conflict"}, // TV-33
		{424, true, "jid-malformed"},
		{403, true, "not-acceptable"},
		{425, false, "bad-request"},
		{400, true, "bad-request"},
	}
	for _, tt := range tests {
		e := ErrorForMSRP(tt.code, "r", tt.nickname)
		if e.Condition != tt.cond || e.Type != ErrorTypeFor(tt.cond) || e.Text != "r" {
			t.Errorf("ErrorForMSRP(%d, %v) = %+v, want %s", tt.code, tt.nickname, e, tt.cond)
		}
	}
}

func TestStanzaErrorError(t *testing.T) {
	tests := []struct {
		e    StanzaError
		want string
	}{
		{StanzaError{Type: "cancel", Condition: "item-not-found"}, "mapping: stanza error cancel/item-not-found"},
		{StanzaError{Type: "wait", Condition: "recipient-unavailable", Text: "Busy Here"}, "mapping: stanza error wait/recipient-unavailable: Busy Here"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
