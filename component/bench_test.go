package component

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

type okSIP struct{}

func (okSIP) SendMessage(context.Context, *sipside.OutgoingMessage) (sipside.Result, error) {
	return sipside.Result{Code: 200}, nil
}

func benchGateway(b *testing.B, sip SIPSender) *Gateway {
	b.Helper()
	am, _ := mapping.NewAddressing(mapping.AddressingConfig{Component: "sip.example.com", ServedDomains: []string{"example.com"}, ForeignDomains: true})
	g, err := New(Config{Component: "sip.example.com", Server: "127.0.0.1:1", Addressing: am, SessionQueue: 1 << 20},
		sip, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	g.out.attach(func([]byte) error { return nil })
	b.Cleanup(func() { g.Close(0) })
	return g
}

// BenchmarkSIPToXMPP: one SIP MESSAGE through mapping to stanza bytes written.
func BenchmarkSIPToXMPP(b *testing.B) {
	g := benchGateway(b, nil)
	m := &sipside.IncomingMessage{
		RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", To: "sip:juliet@example.com",
		CallID: "9E97FB43-85F4-4A00-8751-1124FD4C7B2E", ContentType: "text/plain",
		Body: []byte("Neither, fair saint, if either thee dislike."),
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := g.HandleSIPMessage(context.Background(), m); r.Code != 202 {
			b.Fatal(r.Code)
		}
	}
}

// BenchmarkXMPPToSIP: one stanza parsed, translated and handed to the
// session, which sends it (to a SIP stub answering 200 at once).
func BenchmarkXMPPToSIP(b *testing.B) {
	g := benchGateway(b, okSIP{})
	raw := `<message xmlns='jabber:component:accept' from='juliet@example.com/yn0cl4bnw0yr3vym' to='romeo\40example.net@sip.example.com' id='m1' type='chat'><body>Art thou not Romeo, and a Montague?</body></message>`
	b.ReportAllocs()
	for b.Loop() {
		e, err := ParseElement(raw)
		if err != nil {
			b.Fatal(err)
		}
		g.dispatch(e)
	}
}

func BenchmarkElementParse(b *testing.B) {
	raw := `<message xmlns='jabber:component:accept' from='juliet@example.com/r' to='bob@sip.example.com' id='m1' type='chat' xml:lang='en'><thread>t1</thread><body>Art thou not Romeo, and a Montague?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseElement(raw); err != nil {
			b.Fatal(err)
		}
	}
}
