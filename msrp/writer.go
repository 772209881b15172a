package msrp

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
)

// Identifiers. Transaction ids, Message-IDs and session-ids are 16
// characters of lower-case base32 carrying 80 random bits (CHAT-20: at least
// 64; CHAT-02d: session-ids hard to guess). They are valid RFC 4975 idents.
const idBytes = 10

// NewTID returns a fresh transaction id from crypto/rand.
func NewTID() string { return mustID(rand.Reader) }

// NewMessageID returns a fresh Message-ID from crypto/rand.
func NewMessageID() string { return mustID(rand.Reader) }

// NewSessionID returns a fresh session-id for an MSRP URL (CHAT-02d).
func NewSessionID() string { return mustID(rand.Reader) }

func mustID(r io.Reader) string {
	id, err := randomID(r)
	if err != nil {
		panic(err) // crypto/rand does not fail (Go 1.24+)
	}
	return id
}

func randomID(r io.Reader) (string, error) {
	var raw [idBytes]byte
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return "", fmt.Errorf("msrp: random source: %w", err)
	}
	return encodeID(raw), nil
}

// encodeID writes 80 bits as 16 base32 characters.
func encodeID(raw [idBytes]byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var out [16]byte
	var acc uint64
	bits := 0
	j := 0
	for _, c := range raw {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[j] = alphabet[acc>>uint(bits)&31]
			j++
		}
	}
	return string(out[:])
}

// idSource draws ids from a caller-chosen reader, which need not be safe for
// concurrent use.
type idSource struct {
	mu  sync.Mutex
	r   io.Reader
	raw [idBytes]byte
}

func (g *idSource) next() (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := io.ReadFull(g.r, g.raw[:]); err != nil {
		return "", fmt.Errorf("msrp: random source: %w", err)
	}
	return encodeID(g.raw), nil
}

// chunkTID returns a transaction id whose end-line text does not occur in
// body, so that neither the chunk nor any interrupted prefix of it can end
// early (RFC 4975 s7.1: the sender keeps the end-line out of the body).
//
// With crypto/rand as the source, the id's 80 random bits are drawn after
// the body is fixed, so the body holds "-------" and the id with a
// probability under 2^-60 per MiB, and nobody can aim at it (why RFC 4975
// s14 wants random ids): the body is not scanned, which saves a pass over
// every octet sent. Other sources (WithRandom, in tests) are scanned.
func (g *idSource) chunkTID(body []byte) (string, error) {
	for range 8 {
		tid, err := g.next()
		if err != nil {
			return "", err
		}
		if g.r == rand.Reader || !containsEndMarker(body, tid) {
			return tid, nil
		}
	}
	return "", fmt.Errorf("%w: no transaction id keeps the body free of its end-line", ErrInvalid)
}

func containsEndMarker(body []byte, tid string) bool {
	if len(body) < 7+len(tid) {
		return false
	}
	marker := make([]byte, 0, 7+len(tid))
	marker = append(marker, "-------"...)
	marker = append(marker, tid...)
	return bytes.Contains(body, marker)
}

// Chunks returns the SEND frames that carry m from the path from to the path
// to (RFC 4975 s7.1, CHAT-21, CHAT-26): bodies of at most size octets
// (size >= 2048), each with Message-ID and Byte-Range start-end/total, '+'
// on all but the last and '$' on the last; Content-Type, the report headers
// and m.Headers on every chunk. A message without a body is one bodiless
// SEND with Byte-Range 1-0/0 (RFC 4975 s5.4, TV-28a). The bodies alias
// m.Body. newTID gives each chunk its transaction id; nil means NewTID. m.ID
// must be set.
func Chunks(m *Message, to, from []URL, size int, newTID func() string) ([]*Frame, error) {
	if size < MinChunkSize {
		return nil, fmt.Errorf("%w: chunk size %d under %d", ErrInvalid, size, MinChunkSize)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	total := int64(len(m.Body))
	var frames []*Frame
	for off := int64(0); ; {
		end := min(off+int64(size), total)
		f := m.chunk(to, from, off, end)
		tid := ""
		for range 8 {
			if newTID != nil {
				tid = newTID()
			} else {
				tid = NewTID()
			}
			if !containsEndMarker(f.Body, tid) {
				break
			}
		}
		f.TID = tid
		if err := f.Validate(); err != nil {
			return nil, err
		}
		frames = append(frames, f)
		off = end
		if off >= total {
			return frames, nil
		}
	}
}

// chunk returns the SEND for body octets [off, end) of m, without TID.
func (m *Message) chunk(to, from []URL, off, end int64) *Frame {
	total := int64(len(m.Body))
	f := &Frame{
		Method:        MethodSEND,
		ToPath:        to,
		FromPath:      from,
		MessageID:     m.ID,
		ByteRange:     &ByteRange{Start: off + 1, End: end, Total: total},
		FailureReport: m.FailureReport,
		Headers:       m.Headers,
		Flag:          FlagContinued,
	}
	if m.SuccessReport {
		f.SuccessReport = ReportYes
	}
	if end >= total {
		f.Flag = FlagEnd
	}
	if total > 0 {
		f.Body = m.Body[off:end]
		f.ContentType = m.ContentType
	}
	return f
}

// Writer serialises frames onto a stream, buffering them until Flush (or
// until the buffer passes 128 KiB). Besides whole frames it writes a chunk
// piece by piece, so that a chunk can be interrupted part-way with '+' (the
// rest follows in a later chunk) or '#' (the message is abandoned), as RFC
// 4975 s7.1 asks of chunks over 2048 octets (CHAT-26).
//
// A Writer is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	buf []byte
	// The chunk being written.
	tid    string
	marker []byte // "-------" + tid, which must not occur in the body
	tail   []byte // last len(marker)-1 body bytes written
	inBody bool
}

const writerFlushSize = 128 << 10

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Buffered returns the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes the buffered bytes in one Write.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	if cap(w.buf) > 4*writerFlushSize {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return err
}

func (w *Writer) maybeFlush() error {
	if len(w.buf) >= writerFlushSize {
		return w.Flush()
	}
	return nil
}

// WriteFrame writes a whole frame after Validate.
func (w *Writer) WriteFrame(f *Frame) error {
	if w.inBody {
		return fmt.Errorf("%w: a chunk is open", ErrInvalid)
	}
	b, err := f.AppendTo(w.buf)
	if err != nil {
		return err
	}
	w.buf = b
	return w.maybeFlush()
}

// BeginChunk writes the start line and headers of the request f, whose body
// follows with WriteBody and ends with EndChunk. f.Body is not written; it
// must be non-nil (a body section follows). A chunk that may be interrupted
// should have Byte-Range end "*" (Unknown): the receiver then takes the end
// from the body it gets.
func (w *Writer) BeginChunk(f *Frame) error {
	if w.inBody {
		return fmt.Errorf("%w: a chunk is open", ErrInvalid)
	}
	if f.Body == nil || f.IsResponse() {
		return fmt.Errorf("%w: BeginChunk needs a request with a body", ErrInvalid)
	}
	head := *f
	head.Body, head.Flag = []byte{}, FlagEnd
	if err := head.Validate(); err != nil {
		return err
	}
	w.buf = head.appendHead(w.buf)
	w.tid, w.inBody = f.TID, true
	w.marker = append(append(w.marker[:0], "-------"...), f.TID...)
	w.tail = w.tail[:0]
	return nil
}

// WriteBody writes body octets of the open chunk. It refuses octets that
// would put the chunk's end-line text into the body.
func (w *Writer) WriteBody(p []byte) (int, error) {
	if !w.inBody {
		return 0, fmt.Errorf("%w: no chunk is open", ErrInvalid)
	}
	if w.crossesMarker(p) {
		return 0, fmt.Errorf("%w: body contains the end-line of transaction %s", ErrInvalid, w.tid)
	}
	w.buf = append(w.buf, p...)
	keep := len(w.marker) - 1
	if len(p) >= keep {
		w.tail = append(w.tail[:0], p[len(p)-keep:]...)
	} else {
		w.tail = append(w.tail, p...)
		if len(w.tail) > keep {
			w.tail = append(w.tail[:0], w.tail[len(w.tail)-keep:]...)
		}
	}
	return len(p), w.maybeFlush()
}

func (w *Writer) crossesMarker(p []byte) bool {
	if bytes.Contains(p, w.marker) {
		return true
	}
	if len(w.tail) == 0 {
		return false
	}
	n := min(len(p), len(w.marker)-1)
	joined := append(append(make([]byte, 0, len(w.tail)+n), w.tail...), p[:n]...)
	return bytes.Contains(joined, w.marker)
}

// EndChunk closes the open chunk with the end-line and flag: '$' (the
// message ends), '+' (interrupted; more chunks follow) or '#' (abandoned).
func (w *Writer) EndChunk(flag byte) error {
	if !w.inBody {
		return fmt.Errorf("%w: no chunk is open", ErrInvalid)
	}
	if !isFlag(flag) {
		return fmt.Errorf("%w: continuation flag %q", ErrInvalid, flag)
	}
	w.buf = appendEndLine(w.buf, w.tid, flag, true)
	w.inBody = false
	return w.maybeFlush()
}
