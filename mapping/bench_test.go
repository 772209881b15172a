package mapping

import "testing"

// Micro-benchmarks of the hot paths: one address mapping per request, one
// message mapping per MESSAGE, one error mapping per failure.

func benchAddressing(b *testing.B) *Addressing {
	b.Helper()
	a, err := NewAddressing(testConfig)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkSIPUserJID(b *testing.B) {
	a := benchAddressing(b)
	for _, bc := range []struct{ name, uri string }{
		{"own", "sip:bob@sip.example.com"},
		{"foreign+gr", "sip:carol@other.net;gr=dr4hcr0st3lup4c"},
		{"escaped", "sip:d%27artagnan@example.net"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.SIPUserJID(bc.uri); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSIPUserURI(b *testing.B) {
	a := benchAddressing(b)
	for _, bc := range []struct{ name, jid string }{
		{"own", "bob@sip.example.com"},
		{"foreign+resource", `carol\40other.net@sip.example.com/dr4hcr0st3lup4c`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.SIPUserURI(bc.jid); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkXMPPUserJID(b *testing.B) {
	a := benchAddressing(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.XMPPUserJID("sip:juliet@example.com;gr=yn0cl4bnw0yr3vym"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkXMPPUserURI(b *testing.B) {
	a := benchAddressing(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.XMPPUserURI(tvJuliet); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEscapeLocal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EscapeLocal("romeo@example.net"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageToSIP(b *testing.B) {
	a := benchAddressing(b)
	m := XMPPMessage{
		ID: "a1", From: tvJuliet, To: tvRomeo, Type: "chat", Lang: "en",
		Thread: "29377446-0CBB-4296-8958-590D79094C50",
		Bodies: []Body{{Text: "Art thou not Romeo, and a Montague?"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.MessageToSIP(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageFromSIP(b *testing.B) {
	a := benchAddressing(b)
	for _, bc := range []struct{ name, ct, body string }{
		{"plain", "text/plain;charset=UTF-8", "Neither, fair saint, if either thee dislike."},
		{"cpim", "message/cpim", "From: <sip:romeo@example.net>\r\nTo: <sip:juliet@example.com>\r\nDateTime: 2008-10-15T15:02:31-03:00\r\n\r\nContent-Type: text/plain\r\n\r\nNeither, fair saint, if either thee dislike."},
		{"html", "text/html", "<p>Neither, <b>fair saint</b>, if either thee <a href='https://example.com/'>dislike</a>.</p>"},
	} {
		s := SIPMessage{
			RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", To: "sip:juliet@example.com",
			CallID: "9E97FB43-85F4-4A00-8751-1124FD4C7B2E", ContentType: bc.ct, ContentLanguage: "en", Body: []byte(bc.body),
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.MessageFromSIP(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkErrorForSIP(b *testing.B) {
	b.Run("404", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if e := ErrorForSIP(404, "Not Found", ""); e.Condition != CondItemNotFound {
				b.Fatal(e)
			}
		}
	})
	b.Run("301", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if e := ErrorForSIP(301, "Moved Permanently", "<sip:romeo@example.org>"); e.Gone == "" {
				b.Fatal(e)
			}
		}
	})
}

func BenchmarkSIPStatusForError(b *testing.B) {
	e := StanzaError{Type: ErrorTypeCancel, Condition: CondItemNotFound}
	b.ReportAllocs()
	for b.Loop() {
		if code, _ := SIPStatusForError(e, true); code != 404 {
			b.Fatal(code)
		}
	}
}

func BenchmarkSplitUTF8(b *testing.B) {
	body := []byte(string(make([]rune, 2000)))
	b.ReportAllocs()
	for b.Loop() {
		SplitUTF8(body, 1000)
	}
}
