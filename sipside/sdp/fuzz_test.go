package sdp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseMSRP: ParseMSRP never panics and classifies its errors; what it
// reads and BuildOffer accepts (Build is stricter: CHAT-02 cross-checks)
// reads back as the same value, and the answer form too.
func FuzzParseMSRP(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sdp"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseMSRP(in)
		if err != nil {
			if !errors.Is(err, ErrBadSDP) && !errors.Is(err, ErrNoMSRPMedia) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if m.Port < 1 || m.Port > 65535 || len(m.Path) == 0 || len(m.AcceptTypes) == 0 || m.Addr == "" {
			t.Fatalf("accepted an unusable stream %+v", m)
		}
		o := Origin{Username: "u", SessionID: 1, SessionVersion: 2}
		b, err := BuildOffer(o, m)
		if err != nil {
			if !errors.Is(err, ErrBadMedia) {
				t.Fatalf("BuildOffer error %v wraps no sentinel", err)
			}
			return
		}
		back, err := ParseMSRP(b)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip\n%+v\n%+v, %v\n%q", m, back, err, b)
		}
		if m.Setup != SetupActpass {
			a, err := BuildAnswer(o, m)
			if err != nil {
				t.Fatalf("BuildAnswer refuses what BuildOffer took: %v", err)
			}
			if back, err := ParseMSRP(a); err != nil || !reflect.DeepEqual(back, m) {
				t.Fatalf("answer round trip\n%+v\n%+v, %v", m, back, err)
			}
		}
	})
}

// FuzzBuildMSRP: whatever BuildOffer accepts is CRLF-only SDP with exactly
// one media line that ParseMSRP reads back as the same value (so no field
// can inject a line); Negotiate gives only types both sides accept.
func FuzzBuildMSRP(f *testing.F) {
	f.Add("192.0.2.1", 2855, false, "msrp://192.0.2.1:2855/abc;tcp", "message/cpim text/plain", "text/*", int64(10000), "active", "sendrecv", "text/plain *")
	f.Add("2001:db8::1", 8888, true, "msrps://relay.example:1/r;tcp msrps://[2001:db8::1]:8888/x;tcp", "*", "", int64(0), "", "", "image/png")
	f.Add("gw.example", 1, false, "msrp://gw.example:1/a;tcp\r\na=x", "text/plain", "", int64(0), "passive", "inactive", "text/plain")
	f.Fuzz(func(t *testing.T, addr string, port int, tls bool, path, types, wrapped string, maxSize int64, setup, dir, offerTypes string) {
		m := MSRPMedia{
			Addr: addr, Port: port, TLS: tls, Path: split(path), AcceptTypes: split(types),
			AcceptWrappedTypes: split(wrapped), MaxSize: maxSize, Setup: setup, Direction: dir,
		}
		b, err := BuildOffer(Origin{SessionID: 7, SessionVersion: 7}, m)
		if err != nil {
			if !errors.Is(err, ErrBadMedia) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if bytes.Count(b, []byte("\n")) != bytes.Count(b, []byte("\r\n")) || bytes.Count(b, []byte("\r\nm=")) != 1 {
			t.Fatalf("bad SDP %q", b)
		}
		back, err := ParseMSRP(b)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip\n%+v\n%+v, %v\n%q", m, back, err, b)
		}
		offer := MSRPMedia{AcceptTypes: split(offerTypes)}
		got, err := Negotiate(offer, m.AcceptTypes)
		if err != nil {
			if !errors.Is(err, ErrNoCommonType) {
				t.Fatalf("Negotiate error %v", err)
			}
			return
		}
		for _, g := range got {
			if !anyCovers(offer.AcceptTypes, g) || !anyCovers(m.AcceptTypes, g) {
				t.Fatalf("Negotiate(%q, %q) gave %q, not accepted by both", offer.AcceptTypes, m.AcceptTypes, g)
			}
		}
	})
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func anyCovers(list []string, t string) bool {
	for _, e := range list {
		if covers(e, t) {
			return true
		}
	}
	return false
}
