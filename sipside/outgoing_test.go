package sipside

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// TestRequestSize: requestSize is the size sipgo writes (D1: the limit is
// on the whole request).
func TestRequestSize(t *testing.T) {
	u, err := New(WithOutboundProxy("sip:10.0.0.1:5070;transport=udp"), WithDomain("gw.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	st := &startedState{sentBy: map[string]hostPort{"UDP": {"127.0.0.1", 5060}}}
	for _, body := range []string{"", "x", strings.Repeat("é", 700)} {
		p, err := prepare(&OutgoingMessage{
			RequestURI: "sip:romeo@example.net", From: "sip:juliet@example.com;gr=x", To: "sip:romeo@example.net",
			FromDisplay: `J "x"`, Subject: "s", ContentLanguage: "en", Body: []byte(body),
		})
		if err != nil {
			t.Fatal(err)
		}
		req := u.build(st, p, p.body, target{"UDP", "10.0.0.1:5070"})
		if got, want := requestSize(req), len(req.String()); got != want {
			t.Errorf("body %d: size %d, written %d", len(body), got, want)
		}
	}
}

// TestFitsUDP: fitsUDP, the shortcut that skips requestSize, only says yes
// when the request really is within the UDP limit, and says yes for a
// typical chat message.
func TestFitsUDP(t *testing.T) {
	long := "sip:" + strings.Repeat("u", 200) + "@" + strings.Repeat("h", 60) + ".example;gr=" + strings.Repeat("r", 40)
	for _, proxy := range []string{"sip:10.0.0.1:5070;transport=udp", "sip:" + strings.Repeat("p", 150) + ".example:5070;transport=udp"} {
		u, err := New(WithOutboundProxy(proxy), WithDomain("gw.example"))
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		for _, st := range []*startedState{
			{sentBy: map[string]hostPort{"UDP": {"127.0.0.1", 5060}}},
			{sentBy: map[string]hostPort{"UDP": {strings.Repeat("s", 60) + ".example", 65535}}},
			{sentBy: map[string]hostPort{}},
		} {
			for _, ruri := range []string{"sip:romeo@example.net", long} {
				for n := 0; n <= 1300; n += 50 {
					p, err := prepare(&OutgoingMessage{
						RequestURI: ruri, From: "sip:juliet@example.com;gr=x", To: ruri, FromDisplay: "J",
						Subject: strings.Repeat("s", n%170), ContentLanguage: "en", Body: []byte(strings.Repeat("x", n)),
					})
					if err != nil {
						t.Fatal(err)
					}
					tg := target{"UDP", "10.0.0.1:5070"}
					size := requestSize(u.build(st, p, p.body, tg)) + sentByMargin(st, tg)
					if u.fitsUDP(st, p, tg) && size > udpSizeLimit {
						t.Errorf("proxy %d bytes, ruri %d bytes, body %d: fitsUDP but %d bytes", len(proxy), len(ruri), n, size)
					}
				}
			}
		}
	}
	u, err := New(WithOutboundProxy("sip:10.0.0.1:5070;transport=udp"), WithDomain("gw.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	p, _ := prepare(&OutgoingMessage{RequestURI: "sip:romeo@example.net", From: "sip:juliet@example.com;gr=x", To: "sip:romeo@example.net",
		Body: []byte(strings.Repeat("x", 200))})
	if !u.fitsUDP(&startedState{sentBy: map[string]hostPort{"UDP": {"127.0.0.1", 5060}}}, p, target{"UDP", "10.0.0.1:5070"}) {
		t.Error("a 200-byte chat message should fit without measuring")
	}
}

func TestMaxChunk(t *testing.T) {
	// Content-Length: 0 is in base; 898 needs two more digits:
	// 400 + 898 + 3 - 1 = 1300.
	if got := maxChunk(400, 5000); got != 898 {
		t.Errorf("maxChunk(400, 5000) = %d, want 898", got)
	}
	for _, c := range []struct{ base, avail int }{
		{400, 5000}, {400, 100}, {1290, 5000}, {1300, 10}, {1299, 10}, {1000, 297}, {1000, 298},
	} {
		got := maxChunk(c.base, c.avail)
		if got > 0 && c.base+got+decimalDigits(got)-1 > udpSizeLimit {
			t.Errorf("maxChunk(%d, %d) = %d exceeds the limit", c.base, c.avail, got)
		}
		if got < c.avail && got+1 <= c.avail && c.base+got+1+decimalDigits(got+1)-1 <= udpSizeLimit {
			t.Errorf("maxChunk(%d, %d) = %d is not the largest", c.base, c.avail, got)
		}
	}
}

func TestUTF8Cut(t *testing.T) {
	b := []byte("aЖ€😀")
	for n := 0; n <= len(b)+1; n++ {
		k := utf8Cut(b, n)
		if k > n || !utf8.Valid(b[:k]) || k < len(b) && !utf8.RuneStart(b[k]) {
			t.Errorf("utf8Cut(%d) = %d", n, k)
		}
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"a\r\nb":           "a  b",
		"a\x00b\tc\x7f":    "a b c ",
		"bad \xff utf8":    "bad \uFFFD utf8",
		"c1 \u0085 \u009f": "c1    ",
		"ok ü 😀":           "ok ü 😀",
	} {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
	if got := quoteDisplay(`a"b\c` + "\n"); got != `a\"b\\c ` {
		t.Errorf("quoteDisplay = %q", got)
	}
	if got := unquoteDisplay(`a\"b\\c`); got != `a"b\c` {
		t.Errorf("unquoteDisplay = %q", got)
	}
}

// TestResolveTarget: next hop and transport (RFC 3263 §4 without NAPTR).
func TestResolveTarget(t *testing.T) {
	srv := map[string][]*net.SRV{
		"_sip._udp.udp.example":  {{Target: "sip1.udp.example.", Port: 5080}},
		"_sip._tcp.tcp.example":  {{Target: "sip2.tcp.example.", Port: 5090}},
		"_sips._tcp.tls.example": {{Target: "sip3.tls.example.", Port: 5091}},
		"_sip._udp.dot.example":  {{Target: ".", Port: 0}},
	}
	lookups := 0
	fake := func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
		lookups++
		if r, ok := srv["_"+service+"._"+proto+"."+name]; ok {
			return "", r, nil
		}
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	mk := func(opts ...Option) *UA {
		u, err := New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		u.srvc = newSRVCache(fake)
		t.Cleanup(func() { u.Close() })
		return u
	}
	plain := mk()
	for _, c := range []struct {
		ruri string
		want target
		err  error
	}{
		{"sip:a@127.0.0.1", target{"UDP", "127.0.0.1:5060"}, nil},
		{"sip:a@127.0.0.1:5070;transport=TCP", target{"TCP", "127.0.0.1:5070"}, nil},
		{"sip:a@[::1]:5070", target{"UDP", "[::1]:5070"}, nil},
		{"sips:a@127.0.0.1", target{"TLS", "127.0.0.1:5061"}, nil},
		{"sip:a@127.0.0.1;transport=tls", target{"TLS", "127.0.0.1:5061"}, nil},
		{"sip:a@named.example:5999", target{"UDP", "named.example:5999"}, nil},
		{"sip:a@udp.example", target{"UDP", "sip1.udp.example:5080"}, nil},
		{"sip:a@tcp.example", target{"TCP", "sip2.tcp.example:5090"}, nil},
		{"sip:a@tcp.example;transport=udp", target{"UDP", "tcp.example:5060"}, nil},
		{"sips:a@tls.example", target{"TLS", "sip3.tls.example:5091"}, nil},
		{"sip:a@dot.example", target{"UDP", "dot.example:5060"}, nil},
		{"sip:a@none.example", target{"UDP", "none.example:5060"}, nil},
		{"sip:a@h;transport=sctp", target{}, ErrTransport},
		{"sips:a@h;transport=udp", target{}, ErrTransport},
	} {
		var ruri sip.Uri
		if err := sip.ParseUri(c.ruri, &ruri); err != nil {
			t.Fatal(err)
		}
		got, err := plain.resolveTarget(context.Background(), &ruri)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: err %v, want %v", c.ruri, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %v %v, want %v", c.ruri, got, err, c.want)
		}
	}
	// The cache answers repeated lookups.
	n := lookups
	var ruri sip.Uri
	sip.ParseUri("sip:a@udp.example", &ruri)
	plain.resolveTarget(context.Background(), &ruri)
	if lookups != n {
		t.Errorf("SRV looked up again")
	}

	// The outbound proxy wins over the Request-URI.
	proxied := mk(WithOutboundProxy("sip:10.1.1.1:5070;transport=udp"))
	sip.ParseUri("sips:a@tls.example", &ruri)
	if got, err := proxied.resolveTarget(context.Background(), &ruri); err != nil || got != (target{"UDP", "10.1.1.1:5070"}) {
		t.Errorf("proxy: %v %v", got, err)
	}
}

// TestTransportErrors: a next hop that refuses or cannot be resolved is
// ErrTransport.
func TestTransportErrors(t *testing.T) {
	checkLeaks(t)
	a := startUA(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	ctx := ctxTimeout(t, 10*time.Second)
	_, err = a.SendMessage(ctx, &OutgoingMessage{
		RequestURI: "sip:juliet@127.0.0.1:" + strconv.Itoa(port) + ";transport=tcp",
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte("x"),
	})
	if !errors.Is(err, ErrTransport) {
		t.Errorf("refused connection: %v", err)
	}
	_, err = a.SendMessage(ctx, &OutgoingMessage{
		RequestURI: "sip:juliet@nonexistent.invalid:5060;transport=tcp",
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte("x"),
	})
	if !errors.Is(err, ErrTransport) {
		t.Errorf("unresolvable: %v", err)
	}
}
