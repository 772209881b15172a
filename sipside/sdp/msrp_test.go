package sdp

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated golden files in testdata")

func readSDP(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update after checking):\n got %q\nwant %q", name, got, want)
	}
}

// TestGoldenRFC4975 reads the offer and answer of RFC 4975 10.1. The offer
// as printed there has no t= line, which RFC 4566 5 requires; it is
// refused, and the fixture used for the exchange adds `t=0 0`.
func TestGoldenRFC4975(t *testing.T) {
	if _, err := ParseMSRP(readSDP(t, "rfc4975-10.1-offer-as-printed.sdp")); !errors.Is(err, ErrBadSDP) {
		t.Errorf("offer without t=: err = %v, want ErrBadSDP", err)
	}
	offer, err := ParseMSRP(readSDP(t, "rfc4975-10.1-offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	want := MSRPMedia{
		Addr: "alice.example.com", Port: 7654,
		Path:        []string{"msrp://alice.example.com:7654/jshA7weztas;tcp"},
		AcceptTypes: []string{"text/plain"},
	}
	if !reflect.DeepEqual(offer, want) {
		t.Errorf("offer = %+v\nwant %+v", offer, want)
	}
	answer, err := ParseMSRP(readSDP(t, "rfc4975-10.1-answer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wantAnswer := MSRPMedia{
		Addr: "bob.example.com", Port: 8888,
		Path:        []string{"msrp://bob.example.com:8888/9di4eae923wzd;tcp"},
		AcceptTypes: []string{"text/plain"},
	}
	if !reflect.DeepEqual(answer, wantAnswer) {
		t.Errorf("answer = %+v\nwant %+v", answer, wantAnswer)
	}
	// Bob's side: negotiate and build the answer; it reads back the same.
	types, err := Negotiate(offer, []string{"message/cpim", "text/plain"})
	if err != nil || !reflect.DeepEqual(types, []string{"text/plain"}) {
		t.Fatalf("Negotiate = %q, %v", types, err)
	}
	b, err := BuildAnswer(Origin{Username: "bob", SessionID: 2890844612, SessionVersion: 2890844616}, wantAnswer)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseMSRP(b); err != nil || !reflect.DeepEqual(got, wantAnswer) {
		t.Errorf("built answer reads back as %+v, %v", got, err)
	}
	// The only difference from the RFC's text is the session name: "-"
	// rather than " -".
	rfc := strings.Replace(string(readSDP(t, "rfc4975-10.1-answer.sdp")), "s= -", "s=-", 1)
	if string(b) != rfc {
		t.Errorf("built answer\n%q\nwant\n%q", b, rfc)
	}
}

// TestParseRelayTLS: LF line ends, an audio line and a rejected message
// line before the usable one, media-level c= over session-level, setup
// from session level, relays in the path (CHAT-05), IPv6.
func TestParseRelayTLS(t *testing.T) {
	m, err := ParseMSRP(readSDP(t, "relay-tls-lf.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	want := MSRPMedia{
		Addr: "2001:db8::1", Port: 2855, TLS: true,
		Path:               []string{"msrps://relay.example.com:2855/asd93;tcp", "msrps://[2001:db8::1]:8888/9di4ea;tcp"},
		AcceptTypes:        []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"},
		AcceptWrappedTypes: []string{"text/plain", "image/*", "*"},
		MaxSize:            65536,
		Setup:              SetupPassive,
		Direction:          SendOnly,
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
	b, err := BuildOffer(Origin{SessionID: 3, SessionVersion: 4}, m)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "build-relay-tls.sdp", b)
	if back, err := ParseMSRP(b); err != nil || !reflect.DeepEqual(back, m) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestBuildOfferGolden(t *testing.T) {
	// The gateway as offerer and active side (RFC 7573 4, CHAT-02, CHAT-03).
	m := MSRPMedia{
		Addr: "gw.example.com", Port: 2855,
		Path:               []string{"msrp://gw.example.com:2855/s3cr3tSess10n;tcp"},
		AcceptTypes:        []string{"message/cpim", "text/plain"},
		AcceptWrappedTypes: []string{"text/plain", "application/im-iscomposing+xml"},
		MaxSize:            10000,
		Setup:              SetupActive,
		Direction:          SendRecv,
	}
	b, err := BuildOffer(Origin{Username: "stox", SessionID: 42, SessionVersion: 1}, m)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "build-offer.sdp", b)
	if !bytes.Contains(b, []byte("\r\nm=message 2855 TCP/MSRP *\r\n")) || !bytes.Contains(b, []byte("\r\nt=0 0\r\n")) {
		t.Errorf("offer %q", b)
	}
	if got, err := ParseMSRP(b); err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
}

func TestBuildRefuses(t *testing.T) {
	ok := func() MSRPMedia {
		return MSRPMedia{Addr: "192.0.2.1", Port: 2855, Path: []string{"msrp://192.0.2.1:2855/abc;tcp"}, AcceptTypes: []string{"text/plain"}}
	}
	cases := []struct {
		name   string
		edit   func(*MSRPMedia, *Origin)
		answer bool
		want   error
	}{
		{"ok", func(*MSRPMedia, *Origin) {}, false, nil},
		{"ok answer", func(*MSRPMedia, *Origin) {}, true, nil},
		{"ok IPv6", func(m *MSRPMedia, _ *Origin) {
			m.Addr = "2001:db8::7"
			m.Path = []string{"msrp://[2001:db8::7]:2855/abc;tcp"}
		}, false, nil},
		{"ok relays", func(m *MSRPMedia, _ *Origin) {
			m.Path = []string{"msrp://relay.example:1/x;tcp", "msrp://192.0.2.1:2855/abc;tcp"}
		}, false, nil},
		{"ok rejected answer", func(m *MSRPMedia, _ *Origin) { m.Port, m.Path, m.AcceptTypes = 0, nil, nil }, true, nil},
		{"offer port 0", func(m *MSRPMedia, _ *Origin) { m.Port = 0 }, false, ErrBadMedia},
		{"port too big", func(m *MSRPMedia, _ *Origin) { m.Port = 70000 }, false, ErrBadMedia},
		{"CRLF in address", func(m *MSRPMedia, _ *Origin) { m.Addr = "192.0.2.1\r\na=evil" }, false, ErrBadMedia},
		{"CRLF in path", func(m *MSRPMedia, _ *Origin) { m.Path = []string{"msrp://192.0.2.1:2855/abc;tcp\r\na=evil"} }, false, ErrBadMedia},
		{"space in path URI", func(m *MSRPMedia, _ *Origin) { m.Path = []string{"msrp://192.0.2.1:2855/a c;tcp"} }, false, ErrBadMedia},
		{"CRLF in type", func(m *MSRPMedia, _ *Origin) { m.AcceptTypes = []string{"text/plain\r\na=evil"} }, false, ErrBadMedia},
		{"CRLF in wrapped type", func(m *MSRPMedia, _ *Origin) { m.AcceptWrappedTypes = []string{"text/plain\n"} }, false, ErrBadMedia},
		{"CRLF in username", func(_ *MSRPMedia, o *Origin) { o.Username = "a\r\nb" }, false, ErrBadMedia},
		{"space in username", func(_ *MSRPMedia, o *Origin) { o.Username = "a b" }, false, ErrBadMedia},
		{"type with parameter", func(m *MSRPMedia, _ *Origin) { m.AcceptTypes = []string{"text/plain;charset=utf-8"} }, false, ErrBadMedia},
		{"no accept-types", func(m *MSRPMedia, _ *Origin) { m.AcceptTypes = nil }, false, ErrBadMedia},
		{"no path", func(m *MSRPMedia, _ *Origin) { m.Path = nil }, false, ErrBadMedia},
		{"path port differs (CHAT-02b)", func(m *MSRPMedia, _ *Origin) { m.Path = []string{"msrp://192.0.2.1:2856/abc;tcp"} }, false, ErrBadMedia},
		{"path port implicit (CHAT-02d)", func(m *MSRPMedia, _ *Origin) { m.Path = []string{"msrp://192.0.2.1/abc;tcp"} }, false, ErrBadMedia},
		{"msrps without TLS", func(m *MSRPMedia, _ *Origin) { m.Path = []string{"msrps://192.0.2.1:2855/abc;tcp"} }, false, ErrBadMedia},
		{"TLS with msrp", func(m *MSRPMedia, _ *Origin) { m.TLS = true }, false, ErrBadMedia},
		{"no transport", func(m *MSRPMedia, _ *Origin) { m.Path = []string{"msrp://192.0.2.1:2855/abc"} }, false, ErrBadMedia},
		{"sip path", func(m *MSRPMedia, _ *Origin) { m.Path = []string{"sip:192.0.2.1:2855;tcp"} }, false, ErrBadMedia},
		{"bad host", func(m *MSRPMedia, _ *Origin) { m.Addr = "exa mple" }, false, ErrBadMedia},
		{"zone", func(m *MSRPMedia, _ *Origin) { m.Addr = "fe80::1%eth0" }, false, ErrBadMedia},
		{"bracketed", func(m *MSRPMedia, _ *Origin) { m.Addr = "[2001:db8::7]" }, false, ErrBadMedia},
		{"negative max-size", func(m *MSRPMedia, _ *Origin) { m.MaxSize = -1 }, false, ErrBadMedia},
		{"bad setup", func(m *MSRPMedia, _ *Origin) { m.Setup = "holdconn" }, false, ErrBadMedia},
		{"answer actpass", func(m *MSRPMedia, _ *Origin) { m.Setup = SetupActpass }, true, ErrBadMedia},
		{"bad direction", func(m *MSRPMedia, _ *Origin) { m.Direction = "sendrecv\r\na=x" }, false, ErrBadMedia},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, o := ok(), Origin{SessionID: 1, SessionVersion: 1}
			c.edit(&m, &o)
			build := BuildOffer
			if c.answer {
				build = BuildAnswer
			}
			b, err := build(o, m)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseMSRP(b)
			if m.Port == 0 {
				if !errors.Is(err, ErrMSRPRejected) || !errors.Is(err, ErrNoMSRPMedia) {
					t.Fatalf("rejected answer: err = %v", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip: %+v, %v\n%s", got, err, b)
			}
		})
	}
}

func TestParseMSRP(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	const line = "m=message 2855 TCP/MSRP *\r\n"
	const path = "a=path:msrp://192.0.2.1:2855/abc;tcp\r\n"
	const types = "a=accept-types:text/plain\r\n"
	cases := []struct {
		name  string
		in    string
		want  error
		check func(*testing.T, MSRPMedia)
	}{
		{"minimal", head + line + types + path, nil, nil},
		{"bad max-size ignored", head + line + types + path + "a=max-size:lots\r\n", nil, func(t *testing.T, m MSRPMedia) {
			if m.MaxSize != 0 {
				t.Errorf("MaxSize %d", m.MaxSize)
			}
		}},
		{"unknown setup ignored", head + line + types + path + "a=setup:holdconn\r\n", nil, func(t *testing.T, m MSRPMedia) {
			if m.Setup != "" {
				t.Errorf("Setup %q", m.Setup)
			}
		}},
		{"first attribute wins", head + line + types + "a=accept-types:image/png\r\n" + path + "a=inactive\r\na=sendonly\r\n", nil, func(t *testing.T, m MSRPMedia) {
			if m.AcceptTypes[0] != "text/plain" || m.Direction != Inactive {
				t.Errorf("%+v", m)
			}
		}},
		{"media c= wins", head + line + "c=IN IP4 198.51.100.9\r\n" + types + path, nil, func(t *testing.T, m MSRPMedia) {
			if m.Addr != "198.51.100.9" {
				t.Errorf("Addr %q", m.Addr)
			}
		}},
		{"session id with slash", head + line + types + "a=path:msrp://h.example:2855/a/b=+~;tcp;x=y\r\n", nil, nil},

		{"not SDP", "hello", ErrBadSDP, nil},
		{"empty", "", ErrBadSDP, nil},
		{"no c=", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n" + line + types + path, ErrBadSDP, nil},
		{"no path", head + line + types, ErrBadSDP, nil},
		{"no accept-types", head + line + path, ErrBadSDP, nil},
		{"empty accept-types", head + line + "a=accept-types:\r\n" + path, ErrBadSDP, nil},
		{"bad type", head + line + "a=accept-types:text\r\n" + path, ErrBadSDP, nil},
		{"bad path", head + line + types + "a=path:http://x/;tcp\r\n", ErrBadSDP, nil},
		{"bad path port", head + line + types + "a=path:msrp://x:0/a;tcp\r\n", ErrBadSDP, nil},
		{"bad c= address", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 a_b\r\nt=0 0\r\n" + line + types + path, ErrBadSDP, nil},
		{"no message line", head + "m=audio 49170 RTP/AVP 0\r\n", ErrNoMSRPMedia, nil},
		{"other proto", head + "m=message 2855 TCP/BFCP *\r\n" + types + path, ErrNoMSRPMedia, nil},
		// pion/sdp knows the IANA protocol names of RFC 4566 and RFC 4975
		// only, case-sensitively, and refuses the whole description.
		{"lower-case proto", head + "m=message 2855 tcp/msrp *\r\n" + types + path, ErrBadSDP, nil},
		{"MSRP over WebSocket (RFC 7977)", head + "m=message 2855 TCP/WS/MSRP *\r\n" + types + path, ErrBadSDP, nil},
		{"rejected", head + "m=message 0 TCP/MSRP *\r\n" + types + path, ErrMSRPRejected, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseMSRP([]byte(c.in))
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				c.check(t, m)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	ours := []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"}
	cases := []struct {
		offer []string
		ours  []string
		want  []string
	}{
		{[]string{"text/plain"}, ours, []string{"text/plain"}},
		{[]string{"text/plain", "message/cpim"}, ours, []string{"message/cpim", "text/plain"}},
		{[]string{"*"}, ours, ours},
		{[]string{"text/*"}, ours, []string{"text/plain"}},
		{[]string{"Message/CPIM"}, ours, []string{"message/cpim"}},
		{[]string{"text/plain", "text/html"}, []string{"text/*"}, []string{"text/plain", "text/html"}},
		{[]string{"text/*"}, []string{"*"}, []string{"text/*"}},
		{[]string{"*"}, []string{"*"}, []string{"*"}},
		{[]string{"text/plain", "text/plain"}, []string{"text/plain", "text/*"}, []string{"text/plain"}},
		// CHECKLIST section 9: RFC 7702 F2 offers text/cpim, which is not
		// message/cpim.
		{[]string{"text/cpim"}, ours, nil},
		{[]string{"image/png"}, ours, nil},
		{nil, ours, nil},
	}
	for _, c := range cases {
		got, err := Negotiate(MSRPMedia{AcceptTypes: c.offer}, c.ours)
		if c.want == nil {
			if !errors.Is(err, ErrNoCommonType) {
				t.Errorf("Negotiate(%q, %q) = %q, %v; want ErrNoCommonType", c.offer, c.ours, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Negotiate(%q, %q) = %q, %v; want %q", c.offer, c.ours, got, err, c.want)
		}
	}
}

func TestAccepts(t *testing.T) {
	m := MSRPMedia{AcceptTypes: []string{"message/cpim", "text/*"}, AcceptWrappedTypes: []string{"image/png"}}
	cases := []struct {
		ct           string
		top, wrapped bool
	}{
		{"message/cpim", true, true},
		{"Message/CPIM", true, true},
		{"text/plain; charset=utf-8", true, true},
		{"text/html", true, true},
		{"image/png", false, true},
		{"image/jpeg", false, false},
		{"application/im-iscomposing+xml", false, false},
		{"text/*", false, false},
		{"*", false, false},
		{"", false, false},
		{"text", false, false},
	}
	for _, c := range cases {
		if got := m.Accepts(c.ct); got != c.top {
			t.Errorf("Accepts(%q) = %v", c.ct, got)
		}
		if got := m.AcceptsWrapped(c.ct); got != c.wrapped {
			t.Errorf("AcceptsWrapped(%q) = %v", c.ct, got)
		}
	}
	if (MSRPMedia{AcceptTypes: []string{"*"}}).Accepts("image/png") != true {
		t.Error("* accepts everything")
	}
}

func BenchmarkParseMSRP(b *testing.B) {
	in := readSDP(b, "relay-tls-lf.sdp")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := ParseMSRP(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildOffer(b *testing.B) {
	m := MSRPMedia{
		Addr: "gw.example.com", Port: 2855,
		Path:        []string{"msrp://gw.example.com:2855/s3cr3tSess10n;tcp"},
		AcceptTypes: []string{"message/cpim", "text/plain"},
		MaxSize:     10000, Setup: SetupActive,
	}
	o := Origin{Username: "stox", SessionID: 42, SessionVersion: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildOffer(o, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNegotiate(b *testing.B) {
	offer := MSRPMedia{AcceptTypes: []string{"message/cpim", "text/plain", "text/html", "image/*"}}
	ours := []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Negotiate(offer, ours); err != nil {
			b.Fatal(err)
		}
	}
}
