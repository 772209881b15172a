package sipside

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func benchPair(b *testing.B) (a, peer *UA) {
	b.Helper()
	mk := func(opts ...Option) *UA {
		u, err := New(append([]Option{
			WithListen("udp:127.0.0.1:0", "tcp:127.0.0.1:0"),
			WithTrusted(loopback),
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		if err := u.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { u.Close() })
		return u
	}
	peer = mk(WithMessageHandler(func(ctx context.Context, m *IncomingMessage) Reply { return Reply{Code: 200} }))
	a = mk()
	return a, peer
}

func benchSend(b *testing.B, tp string) {
	a, peer := benchPair(b)
	var port uint16
	for _, l := range peer.Listeners() {
		if l.Transport == tp {
			port = l.Addr.Port()
		}
	}
	msg := &OutgoingMessage{
		RequestURI: fmt.Sprintf("sip:juliet@127.0.0.1:%d;transport=%s", port, tp),
		From:       "sip:romeo@example.net",
		To:         "sip:juliet@example.com",
		Body:       []byte("Art thou not Romeo, and a Montague?"),
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := a.SendMessage(ctx, msg)
		if err != nil || res.Code != 200 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

// BenchmarkSendMessageUDP: one MESSAGE -> 200 round trip at a time to a
// second UA over loopback UDP.
func BenchmarkSendMessageUDP(b *testing.B) { benchSend(b, "udp") }

// BenchmarkSendMessageTCP: the same over one reused TCP connection.
func BenchmarkSendMessageTCP(b *testing.B) { benchSend(b, "tcp") }

// BenchmarkSendMessageParallelUDP: concurrent senders (throughput).
func BenchmarkSendMessageParallelUDP(b *testing.B) {
	a, peer := benchPair(b)
	var port uint16
	for _, l := range peer.Listeners() {
		if l.Transport == "udp" {
			port = l.Addr.Port()
		}
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			msg := &OutgoingMessage{
				RequestURI: fmt.Sprintf("sip:juliet%d@127.0.0.1:%d", i%50, port),
				From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte("hello"),
			}
			res, err := a.SendMessage(context.Background(), msg)
			if err != nil || res.Code != 200 {
				b.Errorf("%+v %v", res, err)
				return
			}
		}
	})
}

// BenchmarkIncomingMessage: the receiving path alone: a raw UDP client sends
// a pre-built MESSAGE (fresh branch each time) and waits for the 200. It
// covers sipgo's parse and transaction, the ordering hook, validation and
// the handler call.
func BenchmarkIncomingMessage(b *testing.B) {
	_, peer := benchPair(b)
	var to *net.UDPAddr
	for _, l := range peer.Listeners() {
		if l.Transport == "udp" {
			to = net.UDPAddrFromAddrPort(l.Addr)
		}
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, 4096)
	p := sip.NewParser()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		data := fmt.Sprintf("MESSAGE sip:juliet@example.com SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-bench-%d;rport\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:romeo@example.net>;tag=vwxyz\r\nTo: <sip:juliet@example.com>\r\n"+
			"Call-ID: bench-%d\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 44\r\n\r\n"+
			"Neither, fair saint, if either thee dislike.", port, i, i)
		if _, err := c.WriteToUDP([]byte(data), to); err != nil {
			b.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			b.Fatal(err)
		}
		msg, err := p.ParseSIP(buf[:n])
		if err != nil {
			b.Fatal(err)
		}
		if r, ok := msg.(*sip.Response); !ok || r.StatusCode != 200 {
			b.Fatalf("got %v", msg)
		}
	}
}

// The fast path's wire reader and writer (wire.go), alone: what each
// page-mode MESSAGE over UDP costs in parsing and formatting, without the
// sockets.
const benchWireRequest = "MESSAGE sip:juliet@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776sgdkse;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: \"Romeo\" <sip:romeo@example.net>;tag=49583\r\n" +
	"To: <sip:juliet@example.com>\r\n" +
	"Call-ID: asd88asd77a@192.0.2.10\r\n" +
	"CSeq: 1 MESSAGE\r\n" +
	"Content-Type: text/plain\r\n" +
	"Content-Length: 35\r\n\r\n" +
	"Art thou not Romeo, and a Montague?"

func BenchmarkWireReadRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := readRequest(benchWireRequest); !ok {
			b.Fatal("declined")
		}
	}
}

func BenchmarkWireAppendResponse(b *testing.B) {
	req, ok := readRequest(benchWireRequest)
	if !ok {
		b.Fatal("declined")
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendResponse(buf[:0], &req, "192.0.2.10", 5060, 202, "Accepted", "1x2y3z", "stox", nil)
	}
}

func BenchmarkWireAppendRequest(b *testing.B) {
	m := &OutgoingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", To: "sip:juliet@example.com",
		CallID: "c1", Body: []byte("Art thou not Romeo, and a Montague?")}
	p, err := prepareLazy(m)
	if err != nil {
		b.Fatal(err)
	}
	p.tag = "t1"
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRequest(buf[:0], p, "192.0.2.10:5060", "z9hG4bKf", "", "stox")
	}
}

func BenchmarkWireReadResponse(b *testing.B) {
	p, err := prepareLazy(&OutgoingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", To: "sip:juliet@example.com",
		CallID: "c1", Body: []byte("x")})
	if err != nil {
		b.Fatal(err)
	}
	p.tag = "t1"
	req, ok := readRequest(string(appendRequest(nil, p, "192.0.2.10:5060", "z9hG4bKf", "", "stox")))
	if !ok {
		b.Fatal("declined")
	}
	res := string(appendResponse(nil, &req, "192.0.2.10", 5060, 200, "OK", "1x2y3z", "peer", nil))
	b.ReportAllocs()
	for b.Loop() {
		if r, ok := readResponse(res); !ok || r.code != 200 {
			b.Fatal("declined")
		}
	}
}
