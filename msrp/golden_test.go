package msrp

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Golden frames in testdata/golden are taken from the RFC 4975, RFC 4976
// and RFC 7701 examples and from the CHECKLIST section 8 vectors TV-26..
// TV-31, with Byte-Range values computed from the bodies (CHECKLIST 9: the
// example ranges are not trusted). Every one is canonical: parsing and
// serialising it gives its bytes back.

func u(s string) URL { return MustParseURL(s) }

var (
	tvX2S = u("msrp://x2s.example.com:8763/lkjh37s2s20w2a;tcp")
	tvS2X = u("msrp://s2x.example.net:7313/ansp71weztas;tcp")
)

const tv26Body = "Neither, fair saint, if either thee dislike."

func TestGoldenFrames(t *testing.T) {
	br := func(s, e, n int64) *ByteRange { return &ByteRange{Start: s, End: e, Total: n} }
	cases := []struct {
		file string
		want *Frame
	}{
		{"tv26-send.msrp", &Frame{ // TV-26
			TID: "d93kswow", Method: MethodSEND,
			ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X},
			MessageID: "87652492", ByteRange: br(1, 44, 44), FailureReport: ReportNo,
			ContentType: "text/plain", Body: []byte(tv26Body), Flag: FlagEnd,
		}},
		{"tv27-send.msrp", &Frame{ // TV-27: no Failure-Report header
			TID: "d93kswow", Method: MethodSEND,
			ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X},
			MessageID: "87652492", ByteRange: br(1, 44, 44),
			ContentType: "text/plain", Body: []byte(tv26Body), Flag: FlagEnd,
		}},
		{"tv27-200.msrp", &Frame{
			TID: "d93kswow", Code: 200, Reason: "OK",
			ToPath: []URL{tvS2X}, FromPath: []URL{tvX2S}, Flag: FlagEnd,
		}},
		{"tv28a-bodiless.msrp", &Frame{ // TV-28a
			TID: "a1b2c3d4e5", Method: MethodSEND,
			ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X},
			MessageID: "m1", ByteRange: br(1, 0, 0), Flag: FlagEnd,
		}},
		{"tv31-report.msrp", &Frame{ // TV-31
			TID: "hx74g336", Method: MethodREPORT,
			ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X},
			MessageID: "5f3kqz2vw7h9xq4m", ByteRange: br(1, 35, 35),
			Status: &Status{Namespace: 0, Code: 200, Reason: "OK"}, Flag: FlagEnd,
		}},
		{"rfc4975-s4-send.msrp", &Frame{
			TID: "a786hjs2", Method: MethodSEND,
			ToPath:    []URL{u("msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp")},
			FromPath:  []URL{u("msrp://atlanta.example.com:7654/jshA7weztas;tcp")},
			MessageID: "87652491", ByteRange: br(1, 23, 23),
			ContentType: "text/plain", Body: []byte("Hey Bob, are you there?"), Flag: FlagEnd,
		}},
		{"rfc4975-aborted.msrp", &Frame{
			TID: "9lc0f1u4", Method: MethodSEND,
			ToPath:    []URL{u("msrp://bob.example.com:8888/9di4eae923wzd;tcp")},
			FromPath:  []URL{u("msrp://alicepc.example.com:7777/iau39soe2843z;tcp")},
			MessageID: "789s9wlk4", ByteRange: br(1, Unknown, Unknown),
			ContentType: "text/plain", Body: []byte("abandoned part"), Flag: FlagAborted,
		}},
		{"rfc4976-relay-send.msrp", &Frame{
			TID: "6aef2k8x", Method: MethodSEND,
			ToPath: []URL{
				{Secure: true, Host: "relay.example.net", Port: 2855, SessionID: "aweif2c3", Transport: "tcp"},
				{Secure: true, Host: "bob.example.net", Port: 2855, SessionID: "9fpnwh3d", Transport: "tcp"},
			},
			FromPath:  []URL{u("msrps://alice.example.com:2855/rjo4gbv2;tcp")},
			MessageID: "87652492", ByteRange: br(1, 5, 5),
			Headers:     []Header{{Name: "X-Extension", Value: "kept as is"}},
			ContentType: "text/plain", Body: []byte("hello"), Flag: FlagEnd,
		}},
		{"rfc7701-nickname.msrp", &Frame{
			TID: "8kb9e0t3nick", Method: MethodNICKNAME,
			ToPath:   []URL{u("msrp://conf.example.com:12763/kjhd37s2s20w2a;tcp")},
			FromPath: []URL{u("msrp://alice.example.com:7654/jshA7weztas;tcp")},
			Headers:  []Header{{Name: "Use-Nickname", Value: `"Alice \"the great\""`}},
			Flag:     FlagEnd,
		}},
		{"empty-body.msrp", &Frame{
			TID: "emp7y0b0", Method: MethodSEND,
			ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X},
			MessageID: "empty1", ByteRange: br(1, 0, 0),
			ContentType: "text/plain", Body: []byte{}, Flag: FlagEnd,
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			raw := golden(t, c.file)
			got := parseOne(t, raw)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("parse\n got %#v\nwant %#v", got, c.want)
			}
			out, err := got.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, raw) {
				t.Errorf("serialised\n%q\nwant\n%q", out, raw)
			}
		})
	}
}

// TestGoldenRoundTrip: every golden file parses, serialises to its own
// bytes, and any Byte-Range with a known end matches its body.
func TestGoldenRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.msrp"))
	if len(files) < 10 {
		t.Fatalf("only %d golden files", len(files))
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f := parseOne(t, raw)
		out, err := f.Bytes()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !bytes.Equal(out, raw) {
			t.Errorf("%s: serialised\n%q\nwant\n%q", file, out, raw)
		}
		if r := f.ByteRange; r != nil && f.Method == MethodSEND && r.End != Unknown && f.Flag != FlagAborted {
			if n := r.End - r.Start + 1; n != int64(len(f.Body)) {
				t.Errorf("%s: Byte-Range %s for a %d-octet body (CHECKLIST 9)", file, r, len(f.Body))
			}
		}
	}
}

func TestGoldenFakeEndLines(t *testing.T) {
	// RFC 4975 s7.1: text in a body that resembles an end-line, without the
	// exact CRLF "-------" tid flag CRLF, is body.
	f := parseOne(t, golden(t, "body-fake-endlines.msrp"))
	if !strings.HasPrefix(string(f.Body), "line one\r\n-------trk4a9b2\r\n") || !strings.HasSuffix(string(f.Body), "\r\nlast") {
		t.Errorf("body %q", f.Body)
	}
	if int64(len(f.Body)) != f.ByteRange.Total {
		t.Errorf("body of %d octets, Byte-Range %s", len(f.Body), f.ByteRange)
	}
}

func TestGoldenNickname(t *testing.T) {
	f := parseOne(t, golden(t, "rfc7701-nickname.msrp"))
	nick, err := f.Nickname()
	if err != nil || nick != `Alice "the great"` {
		t.Errorf("Nickname() = %q, %v", nick, err)
	}
}

// TestGoldenTV30 builds the X->S SEND of TV-30 with the writer: a fresh
// random tid and Message-ID, To-Path first, Byte-Range 1-35/35 (not the RFC
// example's 1-25/25), Success-Report yes, Failure-Report no.
func TestGoldenTV30(t *testing.T) {
	m := &Message{
		ID: NewMessageID(), ContentType: "text/plain", Body: []byte("Art thou not Romeo, and a Montague?"),
		SuccessReport: true, FailureReport: ReportNo,
	}
	frames, err := Chunks(m, []URL{tvS2X}, []URL{tvX2S}, DefaultChunkSize, nil)
	if err != nil || len(frames) != 1 {
		t.Fatalf("Chunks: %d frames, %v", len(frames), err)
	}
	raw, err := frames[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	f := frames[0]
	lines := strings.Split(string(raw), "\r\n")
	want := []string{
		"MSRP " + f.TID + " SEND",
		"To-Path: " + tvS2X.String(),
		"From-Path: " + tvX2S.String(),
		"Message-ID: " + m.ID,
		"Byte-Range: 1-35/35",
		"Success-Report: yes",
		"Failure-Report: no",
		"Content-Type: text/plain",
		"",
		"Art thou not Romeo, and a Montague?",
		"-------" + f.TID + "$",
		"",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("TV-30 frame\n got %q\nwant %q", lines, want)
	}
	if len(f.TID) < 12 || len(m.ID) < 12 {
		t.Errorf("tid %q / Message-ID %q shorter than 12 characters", f.TID, m.ID)
	}
}

// TestBadFrames: frames Kamailio's relay would drop are refused; the
// parser stays usable after non-fatal errors.
func TestBadFrames(t *testing.T) {
	cases := []struct {
		file  string
		code  int
		fatal bool
	}{
		{"order-from-first.msrp", 400, false},
		{"order-msgid-first.msrp", 400, false},
		{"no-blank-line.msrp", 400, false},
		{"ct-not-last.msrp", 400, false},
		{"body-no-ct.msrp", 400, false},
		{"bad-byterange.msrp", 400, false},
		{"bad-url.msrp", 400, false},
		{"dup-msgid.msrp", 400, false},
		{"lf-only-header.msrp", 400, false},
		{"bad-report-value.msrp", 400, false},
		{"response-with-body.msrp", 400, false},
		{"fatal-not-msrp.msrp", 400, true},
		{"fatal-lowercase.msrp", 400, true},
		{"fatal-bad-tid.msrp", 400, true},
	}
	next := golden(t, "tv28a-bodiless.msrp")
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "bad", c.file))
			if err != nil {
				t.Fatal(err)
			}
			p := NewParser(Limits{})
			p.Write(raw)
			p.Write(next)
			_, err = p.Next()
			perr, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("Next() = %v, want a ParseError", err)
			}
			if perr.Code != c.code || perr.Fatal != c.fatal {
				t.Errorf("code %d fatal %v, want %d %v (%v)", perr.Code, perr.Fatal, c.code, c.fatal, perr)
			}
			if !c.fatal {
				if perr.Frame == nil || perr.Frame.TID == "" {
					t.Errorf("non-fatal error without the transaction id")
				}
				f, err := p.Next()
				if err != nil || f.TID != "a1b2c3d4e5" {
					t.Errorf("frame after the bad one: %v, %v", f, err)
				}
			} else if _, err := p.Next(); err == nil || err == ErrNeedMore {
				t.Errorf("parser goes on after a fatal error: %v", err)
			}
		})
	}
}

// TestBadEndLineNeverCompletes: a frame whose end-line has no flag or the
// wrong tid never completes; it swallows what follows until the frame
// limit, then fails with 413 (Kamailio behaves alike).
func TestBadEndLineNeverCompletes(t *testing.T) {
	for _, file := range []string{"incomplete-endline-noflag.msrp", "incomplete-endline-othertid.msrp"} {
		t.Run(file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "bad", file))
			if err != nil {
				t.Fatal(err)
			}
			p := NewParser(Limits{MaxHeaderBytes: 1024, MaxBodyBytes: 2048})
			p.Write(raw)
			p.Write(golden(t, "tv28a-bodiless.msrp"))
			if _, err := p.Next(); err != ErrNeedMore {
				t.Fatalf("Next() = %v, want ErrNeedMore", err)
			}
			filler := bytes.Repeat([]byte("x"), 4096)
			var perr *ParseError
			for range 10 {
				p.Write(filler)
				_, err := p.Next()
				if err == ErrNeedMore {
					continue
				}
				var ok bool
				if perr, ok = err.(*ParseError); !ok {
					t.Fatalf("Next() = %v", err)
				}
				break
			}
			if perr == nil || perr.Code != 413 || !perr.Fatal {
				t.Fatalf("got %v, want a fatal 413", perr)
			}
		})
	}
}
