package msrp

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func randomBody(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

// TestChunks1MiB: a 1 MiB message in 16 KiB chunks (CHAT-26) has
// contiguous 1-based Byte-Ranges, '+' on all but the last, fresh
// transaction ids, and reassembles intact.
func TestChunks1MiB(t *testing.T) {
	body := randomBody(1<<20, 7)
	m := &Message{ID: "big1", ContentType: "application/octet-stream", Body: body, FailureReport: ReportNo}
	frames, err := Chunks(m, []URL{tvS2X}, []URL{tvX2S}, 16<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 64 {
		t.Fatalf("%d chunks, want 64", len(frames))
	}
	tids := map[string]bool{}
	next := int64(1)
	for i, f := range frames {
		r := f.ByteRange
		if r.Start != next || r.End != next+int64(len(f.Body))-1 || r.Total != 1<<20 {
			t.Fatalf("chunk %d: Byte-Range %s", i, r)
		}
		next = r.End + 1
		want := FlagContinued
		if i == len(frames)-1 {
			want = FlagEnd
		}
		if f.Flag != want || f.MessageID != "big1" || f.FailureReport != ReportNo || f.ContentType == "" {
			t.Fatalf("chunk %d: flag %c, headers %+v", i, f.Flag, f)
		}
		if tids[f.TID] || len(f.TID) != 16 {
			t.Fatalf("chunk %d: tid %q reused or short", i, f.TID)
		}
		tids[f.TID] = true
	}
	// Out of order: reassembly waits for every octet.
	a := newAssembler(DefaultLimits())
	order := rand.New(rand.NewPCG(3, 4)).Perm(len(frames))
	var got *Message
	for n, i := range order {
		raw, err := frames[i].Bytes()
		if err != nil {
			t.Fatal(err)
		}
		m, code, err := a.add(parseOne(t, raw))
		if code != 200 || err != nil {
			t.Fatalf("chunk %d: %d %v", i, code, err)
		}
		if m != nil {
			if n != len(frames)-1 {
				t.Fatalf("message complete after %d of %d chunks", n+1, len(frames))
			}
			got = m
		}
	}
	if got == nil || !bytes.Equal(got.Body, body) || got.ID != "big1" || got.ContentType != "application/octet-stream" {
		t.Fatal("reassembled message differs")
	}
	if len(a.msgs) != 0 {
		t.Errorf("%d assemblies left", len(a.msgs))
	}
}

func TestChunksBodiless(t *testing.T) {
	frames, err := Chunks(&Message{ID: "m1"}, []URL{tvS2X}, []URL{tvX2S}, DefaultChunkSize, nil)
	if err != nil || len(frames) != 1 {
		t.Fatal(frames, err)
	}
	f := frames[0]
	if f.Body != nil || f.ContentType != "" || *f.ByteRange != (ByteRange{1, 0, 0}) || f.Flag != FlagEnd {
		t.Errorf("bodiless SEND %+v (CHAT-21e, TV-28a)", f)
	}
	if _, err := Chunks(&Message{ID: "m1"}, nil, nil, 100, nil); err == nil {
		t.Error("chunk size under 2048 accepted (CHAT-26)")
	}
	if _, err := Chunks(&Message{ID: "m1", Body: []byte("x")}, []URL{tvS2X}, []URL{tvX2S}, 4096, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("body without Content-Type: %v", err)
	}
}

// TestChunksAvoidEndLine: a body that contains the end-line text of the
// first tid offered gets another tid (RFC 4975 s7.1).
func TestChunksAvoidEndLine(t *testing.T) {
	tids := []string{"aaaa1111", "bbbb2222"}
	n := 0
	next := func() string { n++; return tids[n-1] }
	m := &Message{ID: "m1", ContentType: "text/plain", Body: []byte("see\r\n-------aaaa1111$\r\nthere")}
	frames, err := Chunks(m, []URL{tvS2X}, []URL{tvX2S}, DefaultChunkSize, next)
	if err != nil || frames[0].TID != "bbbb2222" {
		t.Fatalf("tid %q, %v", frames[0].TID, err)
	}
}

// TestAssemblerTV29: chunked message delivered once complete (a); a total
// over the limit gets 413 and later chunks are dropped (b).
func TestAssemblerTV29(t *testing.T) {
	send := func(tid string, start, end, total int64, flag byte, id string) *Frame {
		return &Frame{TID: tid, Method: MethodSEND, ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X}, MessageID: id,
			ByteRange: &ByteRange{start, end, total}, ContentType: "text/plain",
			Body: bytes.Repeat([]byte{'a' + byte(start%26)}, int(end-start+1)), Flag: flag}
	}
	a := newAssembler(Limits{MaxMessageBytes: 10000}.withDefaults())
	m, code, _ := a.add(send("c1", 1, 2048, 2100, FlagContinued, "tv29a"))
	if m != nil || code != 200 {
		t.Fatalf("TV-29a chunk 1: %v %d", m, code)
	}
	m, code, _ = a.add(send("c2", 2049, 2100, 2100, FlagEnd, "tv29a"))
	if m == nil || code != 200 || len(m.Body) != 2100 {
		t.Fatalf("TV-29a chunk 2: %v %d", m, code)
	}
	m, code, err := a.add(send("c3", 1, 2048, 20000, FlagContinued, "tv29b"))
	if m != nil || code != 413 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("TV-29b: %v %d %v", m, code, err)
	}
	m, code, _ = a.add(send("c4", 2049, 4096, 20000, FlagContinued, "tv29b"))
	if m != nil || code != 413 {
		t.Fatalf("TV-29b later chunk: %v %d", m, code)
	}
	// Unknown total: 413 once the octets pass the limit.
	a.add(send("c5", 1, 8000, Unknown, FlagContinued, "star"))
	m, code, _ = a.add(send("c6", 8001, 10001, Unknown, FlagContinued, "star"))
	if m != nil || code != 413 {
		t.Fatalf("unknown total over the limit: %d", code)
	}
}

func TestAssemblerAbortAndErrors(t *testing.T) {
	a := newAssembler(Limits{MaxAssemblies: 2}.withDefaults())
	chunk := func(id string, start int64, body string, total int64, flag byte) *Frame {
		return &Frame{Method: MethodSEND, MessageID: id, ByteRange: &ByteRange{start, Unknown, total},
			ContentType: "text/plain", Body: []byte(body), Flag: flag}
	}
	a.add(chunk("x", 1, "abc", 6, FlagContinued))
	if m, code, _ := a.add(chunk("x", 4, "", 6, FlagAborted)); m != nil || code != 200 || len(a.msgs) != 0 {
		t.Errorf("'#' must drop the message (CHAT-26): %v %d %d", m, code, len(a.msgs))
	}
	// '*' end and total: the end comes from the bodies.
	a.add(chunk("y", 1, "hello ", Unknown, FlagContinued))
	m, _, _ := a.add(chunk("y", 7, "world", Unknown, FlagEnd))
	if m == nil || string(m.Body) != "hello world" {
		t.Errorf("unknown totals: %v", m)
	}
	// More messages in progress than allowed.
	a.add(chunk("p1", 1, "a", 10, FlagContinued))
	a.add(chunk("p2", 1, "a", 10, FlagContinued))
	if _, code, _ := a.add(chunk("p3", 1, "a", 10, FlagContinued)); code != 413 {
		t.Errorf("third message in progress: %d, want 413", code)
	}
	if _, code, _ := a.add(chunk("p1", 5, "abcdefgh", 10, FlagContinued)); code != 400 {
		t.Errorf("chunk past its total: %d, want 400", code)
	}
	if _, code, _ := a.add(chunk("p2", 2, "b", 11, FlagContinued)); code != 400 {
		t.Errorf("changed total: %d, want 400", code)
	}
	// Bodiless 1-0/0 is answered but not delivered (TV-28a).
	if m, code, _ := a.add(&Frame{Method: MethodSEND, MessageID: "m1", ByteRange: &ByteRange{1, 0, 0}, Flag: FlagEnd}); m != nil || code != 200 {
		t.Errorf("bodiless: %v %d", m, code)
	}
}

// TestWriterInterrupt: a chunk written piece by piece and interrupted with
// '#' or '+' parses as an interrupted chunk with the octets written.
func TestWriterInterrupt(t *testing.T) {
	for _, flag := range []byte{FlagAborted, FlagContinued} {
		var out bytes.Buffer
		w := NewWriter(&out)
		f := &Frame{TID: "intr0001", Method: MethodSEND, ToPath: []URL{tvS2X}, FromPath: []URL{tvX2S}, MessageID: "m1",
			ByteRange: &ByteRange{1, Unknown, 10000}, ContentType: "text/plain", Body: []byte{}, Flag: FlagEnd}
		if err := w.BeginChunk(f); err != nil {
			t.Fatal(err)
		}
		w.WriteBody(bytes.Repeat([]byte("x"), 3000))
		w.WriteBody([]byte("-------intr000")) // harmless: not the whole marker
		if _, err := w.WriteBody([]byte("1")); !errors.Is(err, ErrInvalid) {
			t.Errorf("marker split across writes accepted: %v", err)
		}
		if err := w.WriteFrame(f); err == nil {
			t.Error("WriteFrame inside an open chunk")
		}
		if err := w.EndChunk(flag); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		got := parseOne(t, out.Bytes())
		if got.Flag != flag || len(got.Body) != 3014 || got.ByteRange.End != Unknown {
			t.Errorf("interrupted chunk: flag %c, %d octets, %s", got.Flag, len(got.Body), got.ByteRange)
		}
		a := newAssembler(DefaultLimits())
		m, code, _ := a.add(got)
		if m != nil || code != 200 {
			t.Errorf("interrupted chunk delivered: %v %d", m, code)
		}
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		for _, id := range []string{NewTID(), NewMessageID(), NewSessionID()} {
			if len(id) != 16 || !validTID(id) || seen[id] {
				t.Fatalf("id %q", id)
			}
			seen[id] = true
		}
	}
	var raw [idBytes]byte
	for i := range raw {
		raw[i] = 0xff
	}
	if got := encodeID(raw); got != "7777777777777777" {
		t.Errorf("encodeID(ff..) = %q", got)
	}
	g := &idSource{r: bytes.NewReader(make([]byte, 10))}
	if id, err := g.next(); err != nil || id != "aaaaaaaaaaaaaaaa" {
		t.Errorf("deterministic source: %q %v", id, err)
	}
	if _, err := g.next(); err == nil {
		t.Error("exhausted source gave an id")
	}
}
