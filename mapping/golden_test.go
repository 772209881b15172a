package mapping

import (
	"reflect"
	"testing"
)

// Golden tests for the CHECKLIST section 8 test vectors that concern this
// package. The vectors use RFC example names in a domain-mapping (Model A)
// world: romeo@example.net is a SIP user, juliet@example.com an XMPP user.
// Under Model B the SIP user appears to XMPP under the component, so where
// a vector shows romeo@example.net as a JID we expect tvRomeo.

func TestGoldenTV01(t *testing.T) {
	// TV-01: <message from='juliet@example.com/yn0cl4bnw0yr3vym'
	// to='romeo@example.net'><body>Art thou not Romeo, and a Montague?</body>
	a := newAddressing(t, testConfig)
	got, err := a.MessageToSIP(XMPPMessage{
		ID: "tv01", From: tvJuliet, To: tvRomeo,
		Bodies: []Body{{Text: "Art thou not Romeo, and a Montague?"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := SIPMessage{
		RequestURI:  "sip:romeo@example.net",                      // (a)
		To:          "sip:romeo@example.net",                      // (b)
		From:        "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym", // (c)
		ContentType: "text/plain;charset=UTF-8",                   // (e)
		Body:        []byte("Art thou not Romeo, and a Montague?"),
		// (f) no Subject, no Call-ID: the caller makes a fresh one.
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TV-01\n got %+v\nwant %+v", got, want)
	}
	if len(got.Body) != 35 { // (e) Content-Length: 35
		t.Errorf("TV-01 body is %d octets, want 35", len(got.Body))
	}
}

func TestGoldenTV02(t *testing.T) {
	a := newAddressing(t, testConfig)
	got, err := a.MessageToSIP(XMPPMessage{
		From: tvJuliet, To: tvRomeo, Lang: "en", Subject: "Hi",
		Thread: "29377446-0CBB-4296-8958-590D79094C50",
		Bodies: []Body{{Text: "Art thou not Romeo, and a Montague?"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "Hi" || got.CallID != "29377446-0CBB-4296-8958-590D79094C50" || got.ContentLanguage != "en" {
		t.Errorf("TV-02: %+v", got)
	}
}

func TestGoldenTV03(t *testing.T) {
	// TV-03: MESSAGE sip:juliet@example.com, From: sip:romeo@example.net;tag=vwxyz
	// (the tag is a header parameter; the caller passes the URI).
	a := newAddressing(t, testConfig)
	got, err := a.MessageFromSIP(SIPMessage{
		RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", To: "sip:juliet@example.com",
		CallID: "9E97FB43-85F4-4A00-8751-1124FD4C7B2E", ContentType: "text/plain",
		Body: []byte("Neither, fair saint, if either thee dislike."),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := XMPPMessage{
		From: tvRomeo, To: "juliet@example.com", Type: "",
		Thread: "9E97FB43-85F4-4A00-8751-1124FD4C7B2E",
		Bodies: []Body{{Text: "Neither, fair saint, if either thee dislike."}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TV-03\n got %+v\nwant %+v", got, want)
	}
	// With Romeo's GRUU known, from is the full JID.
	got, err = a.MessageFromSIP(SIPMessage{
		RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net;gr=dr4hcr0st3lup4c",
		ContentType: "text/plain", Body: []byte("x"),
	})
	if err != nil || got.From != tvRomeo+"/dr4hcr0st3lup4c" {
		t.Errorf("TV-03 GRUU: from %q, %v", got.From, err)
	}
}

func TestGoldenTV04(t *testing.T) {
	a := newAddressing(t, testConfig)
	got, err := a.MessageFromSIP(SIPMessage{
		RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net",
		ContentType: "text/plain", ContentLanguage: "cs", Body: []byte("Ahoj"),
	})
	if err != nil || got.Lang != "cs" {
		t.Errorf("TV-04: lang %q, %v", got.Lang, err)
	}
}

func TestGoldenTV05(t *testing.T) {
	a := newAddressing(t, testConfig)
	_, err := a.MessageFromSIP(SIPMessage{
		RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net",
		ContentType: "application/vnd.foo", Body: []byte("x"),
	})
	checkErr(t, "TV-05", err, ErrUnsupportedType)
	for _, want := range []string{"text/plain", "text/html"} {
		found := false
		for _, ct := range AcceptedTypes {
			found = found || ct == want
		}
		if !found {
			t.Errorf("TV-05: Accept lacks %s", want)
		}
	}
}

func TestGoldenTV07(t *testing.T) {
	want := StanzaError{Type: "cancel", Condition: "item-not-found", Text: "Not Found"}
	if got := ErrorForSIP(404, "Not Found", ""); got != want {
		t.Errorf("TV-07: %+v", got)
	}
}

func TestGoldenTV08(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		contact string
		want    StanzaError
	}{
		{"a", 503, "", StanzaError{Type: "cancel", Condition: "internal-server-error"}},
		{"b", 486, "", StanzaError{Type: "wait", Condition: "recipient-unavailable"}},
		{"c", 603, "", StanzaError{Type: "wait", Condition: "recipient-unavailable"}},
		{"d", 410, "", StanzaError{Type: "cancel", Condition: "gone"}},
		{"e", 301, "<sip:romeo@example.org>", StanzaError{Type: "cancel", Condition: "gone", Gone: "xmpp:romeo@example.org"}},
		{"f", 488, "", StanzaError{Type: "modify", Condition: "not-acceptable"}},
		{"g", 402, "", StanzaError{Type: "modify", Condition: "bad-request"}},
		{"399", 399, "", StanzaError{Type: "modify", Condition: "redirect"}},
		{"499", 499, "", StanzaError{Type: "modify", Condition: "bad-request"}},
		{"599", 599, "", StanzaError{Type: "cancel", Condition: "internal-server-error"}},
		{"699", 699, "", StanzaError{Type: "wait", Condition: "recipient-unavailable"}},
	}
	for _, tt := range tests {
		if got := ErrorForSIP(tt.code, "", tt.contact); got != tt.want {
			t.Errorf("TV-08%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if got := ErrorForTimeout(); got.Condition != "remote-server-timeout" {
		t.Errorf("TV-08 timeout: %+v", got)
	}
}

func TestGoldenTV09(t *testing.T) {
	tests := []struct {
		name    string
		e       StanzaError
		full    bool
		code    int
		contact string
	}{
		{"a bare", StanzaError{Condition: "item-not-found"}, false, 604, ""},
		{"a full", StanzaError{Condition: "item-not-found"}, true, 404, ""},
		{"b bare", StanzaError{Condition: "forbidden"}, false, 603, ""},
		{"b full", StanzaError{Condition: "forbidden"}, true, 403, ""},
		{"c bare", StanzaError{Condition: "feature-not-implemented"}, false, 501, ""},
		{"c full", StanzaError{Condition: "feature-not-implemented"}, true, 405, ""},
		{"d", StanzaError{Condition: "service-unavailable"}, true, 403, ""},
		{"e gone", StanzaError{Condition: "gone", Gone: "xmpp:new@example.com"}, false, 301, "sip:new@example.com"},
		{"e empty gone", StanzaError{Condition: "gone"}, false, 410, ""},
		{"f", StanzaError{Condition: "remote-server-not-found"}, false, 404, ""},
		{"g", StanzaError{Condition: "unexpected-request"}, false, 491, ""},
	}
	for _, tt := range tests {
		code, contact := SIPStatusForError(tt.e, tt.full)
		if code != tt.code || contact != tt.contact {
			t.Errorf("TV-09%s: %d %q, want %d %q", tt.name, code, contact, tt.code, tt.contact)
		}
	}
}

// TV-10 and TV-11 are Model A examples: they test the plain RFC 7247
// algorithms, which the Model B mapping is built on.
func TestGoldenTV10(t *testing.T) {
	for _, tt := range []struct{ uri, jid string }{
		{"sip:f%C3%BC@sip.example", "fü@sip.example"},
		{"sip:o'malley@sip.example", `o\27malley@sip.example`},
		{"sip:foo@sip.example;gr=bar", "foo@sip.example/bar"},
	} {
		if got, err := JIDFromSIPURI(tt.uri); err != nil || got != tt.jid {
			t.Errorf("TV-10 %s: %q, %v; want %q", tt.uri, got, err, tt.jid)
		}
	}
}

func TestGoldenTV11(t *testing.T) {
	for _, tt := range []struct{ jid, uri string }{
		{`m\26m@xmpp.example`, "sip:m&m@xmpp.example"},
		{"tschüss@xmpp.example", "sip:tsch%C3%BCss@xmpp.example"},
		{"baz@xmpp.example/qux", "sip:baz@xmpp.example;gr=qux"},
	} {
		if got, err := SIPURIFromJID(tt.jid); err != nil || got != tt.uri {
			t.Errorf("TV-11 %s: %q, %v; want %q", tt.jid, got, err, tt.uri)
		}
	}
}

func TestGoldenTV12(t *testing.T) {
	a := newAddressing(t, AddressingConfig{Component: "sip.gw.example", ServedDomains: []string{"example.com"}, ForeignDomains: true})
	for _, tt := range []struct{ uri, jid, back string }{
		{"sip:romeo@example.net", `romeo\40example.net@sip.gw.example`, "sip:romeo@example.net"},
		// (d) gives back the original URI up to RFC 3261 19.1.4: ' is
		// unreserved, so %27 and ' are the same URI; the normal form is '.
		{"sip:d%27artagnan@example.net", `d\27artagnan\40example.net@sip.gw.example`, "sip:d'artagnan@example.net"},
		{"sip:john%20doe@example.net", `john\20doe\40example.net@sip.gw.example`, "sip:john%20doe@example.net"},
	} {
		jid, err := a.SIPUserJID(tt.uri)
		if err != nil || jid != tt.jid {
			t.Errorf("TV-12 %s: %q, %v; want %q", tt.uri, jid, err, tt.jid)
			continue
		}
		back, err := a.SIPUserURI(jid)
		if err != nil || back != tt.back {
			t.Errorf("TV-12d %s: %q, %v; want %q", jid, back, err, tt.back)
		}
		u1, _ := ParseURI(tt.uri)
		u2, _ := ParseURI(back)
		if !reflect.DeepEqual(u1, u2) {
			t.Errorf("TV-12d: %s and %s differ", tt.uri, back)
		}
	}
	if got, err := UnescapeLocal(`c\3a\5c5commas`); err != nil || got != `c:\5commas` {
		t.Errorf("TV-12e: %q, %v", got, err)
	}
}

func TestGoldenTV13(t *testing.T) {
	a := newAddressing(t, AddressingConfig{Component: "sip.gw.example", ServedDomains: []string{"example.com"}, ForeignDomains: true})
	if got, err := a.PromptJID("romeo@example.net"); err != nil || got != `romeo\40example.net@sip.gw.example` {
		t.Errorf("TV-13: %q, %v", got, err)
	}
}
