package msrp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// result is one outcome of Parser.Next, for comparing parses.
type result struct {
	f     *Frame
	code  int
	fatal bool
	tid   string
}

// parseAll feeds data to a parser in the given pieces (Write as much as it
// takes, Next until ErrNeedMore) and returns every outcome.
func parseAll(t testing.TB, lim Limits, pieces [][]byte) []result {
	t.Helper()
	p := NewParser(lim)
	var out []result
	drain := func() bool {
		for {
			f, err := p.Next()
			if err == ErrNeedMore {
				return true
			}
			if err != nil {
				var perr *ParseError
				if !errors.As(err, &perr) {
					t.Fatalf("Next: %v", err)
				}
				r := result{code: perr.Code, fatal: perr.Fatal}
				if perr.Frame != nil {
					r.tid = perr.Frame.TID
				}
				out = append(out, r)
				if perr.Fatal {
					return false
				}
				continue
			}
			out = append(out, result{f: f})
		}
	}
	for _, piece := range pieces {
		for len(piece) > 0 {
			n, err := p.Write(piece)
			piece = piece[n:]
			if err != nil && err != ErrBufferFull {
				return out
			}
			if !drain() {
				return out
			}
			if n == 0 && len(piece) > 0 {
				t.Fatalf("parser takes no bytes and needs more (buffered %d)", p.Buffered())
			}
		}
	}
	return out
}

// split cuts data at the given positions.
func split(data []byte, cuts []int) [][]byte {
	var pieces [][]byte
	prev := 0
	for _, c := range cuts {
		if c <= prev || c >= len(data) {
			continue
		}
		pieces = append(pieces, data[prev:c])
		prev = c
	}
	return append(pieces, data[prev:])
}

func sameResults(a, b []result) bool { return reflect.DeepEqual(a, b) }

// TestParserEverySplit: every golden file fed in two pieces at every offset,
// and byte by byte, gives the same frame as in one piece.
func TestParserEverySplit(t *testing.T) {
	var stream []byte
	for _, name := range []string{"tv26-send.msrp", "tv27-200.msrp", "tv28a-bodiless.msrp", "body-fake-endlines.msrp", "rfc4976-relay-send.msrp", "empty-body.msrp", "rfc7701-nickname.msrp"} {
		stream = append(stream, golden(t, name)...)
	}
	whole := parseAll(t, Limits{}, [][]byte{stream})
	if len(whole) != 7 {
		t.Fatalf("%d results, want 7", len(whole))
	}
	for i := 1; i < len(stream); i++ {
		if got := parseAll(t, Limits{}, split(stream, []int{i})); !sameResults(got, whole) {
			t.Fatalf("split at %d differs", i)
		}
	}
	bytewise := make([]int, len(stream))
	for i := range bytewise {
		bytewise[i] = i
	}
	if got := parseAll(t, Limits{}, split(stream, bytewise)); !sameResults(got, whole) {
		t.Fatal("byte-by-byte parse differs")
	}
}

// TestParserLimits: header and body limits are 413, fatal (connection
// protection), whatever the split.
func TestParserLimits(t *testing.T) {
	lim := Limits{MaxHeaderBytes: 256, MaxBodyBytes: 100}
	big := strings.Repeat("a", 101)
	f := &Frame{TID: "lim1t001", Method: MethodSEND, ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X}, MessageID: "m1",
		ContentType: "text/plain", Body: []byte(big), Flag: FlagEnd}
	bodyTooBig, _ := f.Bytes()
	f.Body = f.Body[:100]
	bodyOK, _ := f.Bytes()
	f.Headers = []Header{{Name: "X-Pad", Value: strings.Repeat("p", 200)}}
	headTooBig, _ := f.Bytes()
	for _, c := range []struct {
		name string
		data []byte
		ok   bool
	}{{"body 100", bodyOK, true}, {"body 101", bodyTooBig, false}, {"headers", headTooBig, false}} {
		whole := parseAll(t, lim, [][]byte{c.data})
		if c.ok {
			if len(whole) != 1 || whole[0].f == nil {
				t.Errorf("%s: %+v", c.name, whole)
			}
			continue
		}
		if len(whole) != 1 || whole[0].code != 413 || !whole[0].fatal {
			t.Errorf("%s: %+v, want a fatal 413", c.name, whole)
		}
		for i := 1; i < len(c.data); i += 7 {
			if got := parseAll(t, lim, split(c.data, []int{i})); !sameResults(got, whole) {
				t.Errorf("%s: split at %d gives %+v", c.name, i, got)
			}
		}
	}
}

// TestParserBoundedMemory: garbage that never ends a frame is refused once
// it fills MaxFrameBytes; the parser never holds more.
func TestParserBoundedMemory(t *testing.T) {
	lim := Limits{MaxHeaderBytes: 1024, MaxBodyBytes: 4096}
	p := NewParser(lim)
	head := "MSRP abcd1234 SEND\r\nTo-Path: " + tvX2S.String() + "\r\nFrom-Path: " + tvS2X.String() + "\r\nMessage-ID: x\r\nContent-Type: text/plain\r\n\r\n"
	p.Write([]byte(head))
	chunk := bytes.Repeat([]byte("-------abcd1234"), 100)
	var err error
	for range 100 {
		_, werr := p.Write(chunk)
		if p.Buffered() > p.lim.MaxFrameBytes {
			t.Fatalf("parser holds %d bytes, limit %d", p.Buffered(), p.lim.MaxFrameBytes)
		}
		if _, err = p.Next(); err != ErrNeedMore {
			break
		}
		if werr != nil && werr != ErrBufferFull {
			t.Fatal(werr)
		}
	}
	var perr *ParseError
	if !errors.As(err, &perr) || perr.Code != 413 || !perr.Fatal {
		t.Fatalf("got %v, want a fatal 413", err)
	}
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("%v does not wrap ErrTooLarge", err)
	}
}

// TestParserMalformedStartLines: what is not an MSRP start line is fatal.
func TestParserMalformedStartLines(t *testing.T) {
	for _, line := range []string{
		"MSRP\r\n", "MSRP  a1b2 SEND\r\n", "MSRP a1b2 send\r\n", "MSRP a1b2 SEND \r\n", "MSRP a1b2 20 OK\r\n",
		"MSRP a1b2 2000\r\n", "MSRP -abc SEND\r\n", "MSRP a1b2\r\n", "HTTP/1.1 200 OK\r\n", "MSRP a1b2 SEND\n",
		"MSRP " + strings.Repeat("a", 65) + " SEND\r\n", "MSRP a1b2 200 \x01\r\n",
	} {
		got := parseAll(t, Limits{}, [][]byte{[]byte(line + "To-Path: x\r\n")})
		if len(got) != 1 || !got[0].fatal {
			t.Errorf("%q: %+v, want one fatal error", line, got)
		}
	}
}

// TestParserResponses: a response with and without a comment; a request
// with an unknown method parses (the session answers 501).
func TestParserResponses(t *testing.T) {
	base := "\r\nTo-Path: " + tvS2X.String() + "\r\nFrom-Path: " + tvX2S.String() + "\r\n-------a1b2$\r\n"
	for _, c := range []struct {
		start  string
		method string
		code   int
		reason string
	}{
		{"MSRP a1b2 200 OK", "", 200, "OK"},
		{"MSRP a1b2 481", "", 481, ""},
		{"MSRP a1b2 413 Stop sending, please", "", 413, "Stop sending, please"},
		{"MSRP a1b2 FOOBAR", "FOOBAR", 0, ""},
	} {
		f := parseOne(t, []byte(c.start+base))
		if f.Method != c.method || f.Code != c.code || f.Reason != c.reason {
			t.Errorf("%q: %q %d %q", c.start, f.Method, f.Code, f.Reason)
		}
	}
}

// TestParserRandomSplits: a long stream of chunks of a 1 MiB message,
// split at random, gives the same frames.
func TestParserRandomSplits(t *testing.T) {
	body := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.IntN(256))
	}
	m := &Message{ID: "bigmsg1", ContentType: "application/octet-stream", Body: body}
	frames, err := Chunks(m, []URL{tvX2S}, []URL{tvS2X}, 16<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stream []byte
	for _, f := range frames {
		stream, err = f.AppendTo(stream)
		if err != nil {
			t.Fatal(err)
		}
	}
	whole := parseAll(t, Limits{}, [][]byte{stream})
	if len(whole) != len(frames) {
		t.Fatalf("%d frames, want %d", len(whole), len(frames))
	}
	for i, r := range whole {
		if r.f == nil || !reflect.DeepEqual(r.f, frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	for range 5 {
		cuts := make([]int, 200)
		for i := range cuts {
			cuts[i] = rng.IntN(len(stream))
		}
		sortInts(cuts)
		if got := parseAll(t, Limits{}, split(stream, cuts)); !sameResults(got, whole) {
			t.Fatal("random split differs")
		}
	}
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// TestReader: frames from an io.Reader, clean EOF and EOF inside a frame.
func TestReader(t *testing.T) {
	stream := append(golden(t, "tv26-send.msrp"), golden(t, "tv27-200.msrp")...)
	r := NewReader(iotestOneByte{bytes.NewReader(stream)}, Limits{})
	for i := range 2 {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
	r = NewReader(bytes.NewReader(stream[:40]), Limits{})
	if _, err := r.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Errorf("cut frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestFrameValidate(t *testing.T) {
	ok := func() *Frame {
		return &Frame{TID: "abcd1234", Method: MethodSEND, ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X}, MessageID: "m1",
			ContentType: "text/plain", Body: []byte("hi"), Flag: FlagEnd}
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Frame){
		"tid":             func(f *Frame) { f.TID = "a b" },
		"method":          func(f *Frame) { f.Method = "send" },
		"code on request": func(f *Frame) { f.Code = 200 },
		"no to-path":      func(f *Frame) { f.ToPath = nil },
		"header CRLF":     func(f *Frame) { f.Headers = []Header{{Name: "X-A", Value: "a\r\nTo-Path: x"}} },
		"known header":    func(f *Frame) { f.Headers = []Header{{Name: "message-id", Value: "x"}} },
		"body no type":    func(f *Frame) { f.ContentType = "" },
		"flag":            func(f *Frame) { f.Flag = 'x' },
		"end-line":        func(f *Frame) { f.Body = []byte("x\r\n-------abcd1234+\r\ny") },
		"end-line tail":   func(f *Frame) { f.Body = []byte("x\r\n-------abcd1234$") },
		"response body":   func(f *Frame) { f.Method = ""; f.Code = 200 },
		"byte range":      func(f *Frame) { f.ByteRange = &ByteRange{Start: 0, End: 1, Total: 1} },
		"report value":    func(f *Frame) { f.SuccessReport = "partial" },
		"message-id":      func(f *Frame) { f.MessageID = "a b" },
		"content-type":    func(f *Frame) { f.ContentType = "text/plain\r\n" },
	} {
		f := ok()
		mod(f)
		if err := f.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", name, err)
		}
	}
	// Text that only resembles the end-line is fine.
	f := ok()
	f.Body = []byte("-------abcd1234 and \r\n-------abcd1234x$\r\n")
	if err := f.Validate(); err != nil {
		t.Errorf("look-alike end-line: %v", err)
	}
}

func TestByteRangeAndStatus(t *testing.T) {
	for in, want := range map[string]ByteRange{
		"1-0/0":       {1, 0, 0},
		"1-*/*":       {1, Unknown, Unknown},
		"2049-*/2100": {2049, Unknown, 2100},
		"5-10/*":      {5, 10, Unknown},
	} {
		got, err := ParseByteRange(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseByteRange(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"0-1/1", "2-0/5", "1-6/5", "1-5", "a-1/1", "01-1/1", "1--1/1", "1-1/-1", "7-*/5", "1-1/1234567890123456789"} {
		if _, err := ParseByteRange(in); err == nil {
			t.Errorf("ParseByteRange(%q) accepted", in)
		}
	}
	st, err := ParseStatus("000 200 OK")
	if err != nil || st != (Status{0, 200, "OK"}) || st.Err() != nil || st.String() != "000 200 OK" {
		t.Errorf("ParseStatus: %v %v", st, err)
	}
	st, err = ParseStatus("000 413")
	var se *StatusError
	if err != nil || !errors.As(st.Err(), &se) || se.Code != 413 {
		t.Errorf("ParseStatus 413: %v %v", st, err)
	}
	for _, in := range []string{"00 200", "000 20", "000 200x", "abc 200"} {
		if _, err := ParseStatus(in); err == nil {
			t.Errorf("ParseStatus(%q) accepted", in)
		}
	}
	if !errors.Is(&StatusError{Code: 408}, ErrTimeout) || errors.Is(&StatusError{Code: 413}, ErrTimeout) {
		t.Error("a 408 StatusError must match ErrTimeout (CHAT-05), others not")
	}
}

func TestNickname(t *testing.T) {
	for _, nick := range []string{"", "Alice", `a"b\c`, "Ünïcødé 名前", "tab\there"} {
		q, err := QuoteNickname(nick)
		if err != nil {
			t.Fatalf("QuoteNickname(%q): %v", nick, err)
		}
		got, err := ParseNickname(q)
		if err != nil || got != nick {
			t.Errorf("round trip %q -> %q -> %q, %v", nick, q, got, err)
		}
	}
	for _, bad := range []string{``, `"`, `abc`, `"a"b"`, `"a\x"`, `"a\"`, "\"a\x01\"", `"` + strings.Repeat("x", 1024) + `"`, "\"\xff\""} {
		if _, err := ParseNickname(bad); err == nil {
			t.Errorf("ParseNickname(%q) accepted", bad)
		}
	}
	if _, err := QuoteNickname(strings.Repeat("x", 1024)); err == nil {
		t.Error("1024-octet nickname accepted (RFC 7701: at most 1023)")
	}
}

// TestParserHeaderBoundary: a header section of exactly MaxHeaderBytes is
// accepted, one byte more is a fatal 413, at every split point.
func TestParserHeaderBoundary(t *testing.T) {
	lim := Limits{MaxHeaderBytes: 512}
	build := func(headerBytes int) []byte {
		f := &Frame{TID: "hdr0lim1", Method: MethodSEND, ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X},
			ContentType: "text/plain", Body: []byte("hi"), Flag: FlagEnd}
		f.Headers = []Header{{Name: "X-Pad", Value: "p"}}
		b, _ := f.Bytes()
		head := bytes.Index(b, []byte("\r\n\r\n")) + 2 // start line and headers
		f.Headers[0].Value = strings.Repeat("p", 1+headerBytes-head)
		b, _ = f.Bytes()
		if got := bytes.Index(b, []byte("\r\n\r\n")) + 2; got != headerBytes {
			t.Fatalf("built %d header bytes, want %d", got, headerBytes)
		}
		return b
	}
	for _, c := range []struct {
		size int
		ok   bool
	}{{512, true}, {513, false}} {
		data := build(c.size)
		whole := parseAll(t, lim, [][]byte{data})
		if c.ok != (len(whole) == 1 && whole[0].f != nil) || !c.ok && (whole[0].code != 413 || !whole[0].fatal) {
			t.Fatalf("%d header bytes: %+v", c.size, whole)
		}
		for i := 1; i < len(data); i++ {
			if got := parseAll(t, lim, split(data, []int{i})); !sameResults(got, whole) {
				t.Fatalf("%d header bytes, split at %d: %+v, whole %+v", c.size, i, got, whole)
			}
		}
	}
}
