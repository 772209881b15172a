package msrp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Parser is an incremental, size-bounded MSRP frame parser (RFC 4975 s9).
// Feed it bytes with Write (or let a Reader do it) and take frames with
// Next, which returns ErrNeedMore while the current frame is incomplete. It
// never holds more than Limits.MaxFrameBytes: Write accepts only what fits
// (ErrBufferFull), and Next fails a frame as soon as it is known to be too
// large. It scans each byte a bounded number of times, however the input is
// split.
//
// A Parser is not safe for concurrent use.
type Parser struct {
	lim Limits
	buf []byte
	off int // start of the current frame in buf

	// State of the current frame; positions are relative to off.
	state     int
	line      int // start of the next header line
	scan      int // where the next search resumes
	bodyStart int
	f         *Frame
	prefix    []byte // "\r\n-------" + tid
	seen      uint16 // known headers met, by hdrKind bit
	nhdr      int    // headers met
	lastCT    bool   // the last header was Content-Type
	skipErr   error  // set while skipping a malformed frame to its end-line
	skipCode  int

	// Caches of repeated header values.
	toPath, fromPath       pathCache
	messageID, contentType interned

	// keep is the largest empty buffer release keeps (0: 64 KiB).
	keep int

	// bodyDst, when set, may return where an n-octet body of f goes (a
	// Session points it into a reassembly buffer, saving a copy); nil
	// means a fresh slice.
	bodyDst func(f *Frame, n int) []byte
}

const (
	stStart = iota
	stHeaders
	stBody
	stSkip
	stDead
)

// NewParser returns a parser with the given limits (zero fields take the
// defaults).
func NewParser(lim Limits) *Parser {
	return &Parser{lim: lim.withDefaults()}
}

// Buffered returns the number of bytes held and not yet returned as frames.
func (p *Parser) Buffered() int { return len(p.buf) - p.off }

// Write appends b to the parser's buffer. It accepts only what fits under
// MaxFrameBytes of unconsumed bytes; when it takes less than len(b) it
// returns ErrBufferFull: call Next until ErrNeedMore, then write the rest.
// After a fatal error it accepts nothing.
func (p *Parser) Write(b []byte) (int, error) {
	if p.state == stDead {
		return 0, fmt.Errorf("%w: parser stopped after a fatal error", ErrMalformed)
	}
	room := p.lim.MaxFrameBytes - p.Buffered()
	n := len(b)
	if n > room {
		n = room
	}
	if n > 0 {
		p.reserve(n)
		p.buf = append(p.buf, b[:n]...)
	}
	if n < len(b) {
		return n, ErrBufferFull
	}
	return n, nil
}

// reserve makes room for n more bytes, moving the current frame to the
// front of the buffer when that avoids growing it.
func (p *Parser) reserve(n int) {
	if p.off > 0 && (p.off == len(p.buf) || cap(p.buf)-len(p.buf) < n) {
		m := copy(p.buf, p.buf[p.off:])
		p.buf = p.buf[:m]
		p.off = 0
	}
	if cap(p.buf)-len(p.buf) >= n {
		return
	}
	size := 2 * cap(p.buf)
	if size < 4096 {
		size = 4096
	}
	if need := len(p.buf) + n; size < need {
		size = need
	}
	if size > p.lim.MaxFrameBytes {
		size = p.lim.MaxFrameBytes
	}
	nb := make([]byte, len(p.buf), size)
	copy(nb, p.buf)
	p.buf = nb
}

// readFrom reads once from r into the buffer's free space, which it makes
// at least min bytes (growing the buffer geometrically), within the frame
// limit. It returns the bytes read and the space offered.
func (p *Parser) readFrom(r io.Reader, min int) (int, int, error) {
	room := p.lim.MaxFrameBytes - p.Buffered()
	if room <= 0 {
		// Next fails a frame that fills the buffer; it cannot get here.
		return 0, 0, fmt.Errorf("%w: frame over %d bytes", ErrTooLarge, p.lim.MaxFrameBytes)
	}
	if min > room {
		min = room
	}
	p.reserve(min)
	free := p.buf[len(p.buf):cap(p.buf)]
	if len(free) > room {
		free = free[:room]
	}
	n, err := r.Read(free)
	p.buf = p.buf[:len(p.buf)+n]
	return n, len(free), err
}

// release drops an empty buffer larger than keep, so that idle sessions
// hold little memory.
func (p *Parser) release() {
	if p.off == len(p.buf) {
		p.buf, p.off = p.buf[:0], 0
		keep := p.keep
		if keep == 0 {
			keep = 64 << 10
		}
		if cap(p.buf) > keep {
			p.buf = nil
		}
	}
}

// Next returns the next complete frame. It returns ErrNeedMore when the
// buffered bytes end inside a frame, and a *ParseError for a frame it cannot
// accept. After a non-fatal ParseError, the frame has been skipped and Next
// may be called again; after a fatal one, every call fails.
func (p *Parser) Next() (*Frame, error) {
	for {
		data := p.buf[p.off:]
		switch p.state {
		case stDead:
			return nil, &ParseError{Err: fmt.Errorf("%w: parser stopped after a fatal error", ErrMalformed), Code: StatusBadRequest, Fatal: true}
		case stStart:
			if len(data) == 0 {
				p.release()
				return nil, ErrNeedMore
			}
			n := min(len(data), 5)
			if !bytes.Equal(data[:n], []byte("MSRP ")[:n]) {
				return nil, p.fatal(StatusBadRequest, fmt.Errorf("%w: frame does not start with \"MSRP \"", ErrMalformed))
			}
			// Size checks come first and depend only on where the line
			// ends, so that any split of the input gives the same result.
			i := bytes.IndexByte(data[p.scan:], '\n')
			if i < 0 {
				p.scan = len(data)
				if len(data) >= p.lim.MaxHeaderBytes {
					return nil, p.fatal(StatusStopSending, fmt.Errorf("%w: start line over %d bytes", ErrTooLarge, p.lim.MaxHeaderBytes))
				}
				return nil, ErrNeedMore
			}
			end := p.scan + i + 1
			if end > p.lim.MaxHeaderBytes {
				return nil, p.fatal(StatusStopSending, fmt.Errorf("%w: start line over %d bytes", ErrTooLarge, p.lim.MaxHeaderBytes))
			}
			if err := p.startLine(data[:end]); err != nil {
				return nil, p.fatal(StatusBadRequest, err)
			}
			p.line, p.scan, p.state = end, end, stHeaders
		case stHeaders:
			rest := data[p.line:]
			if len(rest) < 2 {
				return nil, ErrNeedMore
			}
			if rest[0] == '\r' && rest[1] == '\n' {
				// Blank line: the body follows (RFC 4975 s7.1, CHAT-21d).
				p.bodyStart = p.line + 2
				p.scan = p.bodyStart
				if err := p.checkHeaders(true); err != nil {
					p.skip(StatusBadRequest, err, p.bodyStart)
					continue
				}
				p.state = stBody
				continue
			}
			if rest[0] == '-' {
				// End-line right after the headers: no body (CHAT-21e).
				want := 7 + len(p.f.TID) + 3
				if len(rest) < want {
					if !bytes.HasPrefix(p.prefix[2:], rest[:min(len(rest), len(p.prefix)-2)]) {
						p.skip(StatusBadRequest, fmt.Errorf("%w: bad end-line", ErrMalformed), p.line-2)
						continue
					}
					return nil, ErrNeedMore
				}
				if !bytes.HasPrefix(rest, p.prefix[2:]) || !isFlag(rest[want-3]) || rest[want-2] != '\r' || rest[want-1] != '\n' {
					p.skip(StatusBadRequest, fmt.Errorf("%w: bad end-line", ErrMalformed), p.line-2)
					continue
				}
				if err := p.checkHeaders(false); err != nil {
					p.skip(StatusBadRequest, err, p.line-2)
					continue
				}
				p.f.Flag = rest[want-3]
				return p.finish(p.line + want), nil
			}
			// A header line (it starts with neither CR nor '-'): the header
			// section is too large once this line must end past the limit.
			i := bytes.IndexByte(data[p.scan:], '\n')
			if i < 0 {
				p.scan = len(data)
				if len(data) >= p.lim.MaxHeaderBytes {
					return nil, p.fatal(StatusStopSending, fmt.Errorf("%w: headers over %d bytes", ErrTooLarge, p.lim.MaxHeaderBytes))
				}
				return nil, ErrNeedMore
			}
			end := p.scan + i + 1
			if end > p.lim.MaxHeaderBytes {
				return nil, p.fatal(StatusStopSending, fmt.Errorf("%w: headers over %d bytes", ErrTooLarge, p.lim.MaxHeaderBytes))
			}
			if err := p.header(data[p.line:end]); err != nil {
				p.skip(StatusBadRequest, err, p.line-2)
				continue
			}
			p.line, p.scan = end, end
		case stBody:
			at, flag, need, ok := findEndLine(data, p.prefix, p.scan)
			if !ok {
				if need {
					p.scan = at
				} else {
					p.scan = max(p.bodyStart, len(data)-len(p.prefix)+1)
				}
				if err := p.checkSize(len(data) - p.bodyStart); err != nil {
					return nil, err
				}
				return nil, ErrNeedMore
			}
			if at-p.bodyStart > p.lim.MaxBodyBytes {
				// Fatal whether or not the end-line is already here, so
				// that the outcome does not depend on how bytes arrive.
				return nil, p.fatal(StatusStopSending, fmt.Errorf("%w: body over %d bytes", ErrTooLarge, p.lim.MaxBodyBytes))
			}
			n := at - p.bodyStart
			var dst []byte
			if p.bodyDst != nil {
				dst = p.bodyDst(p.f, n)
			}
			if dst == nil || len(dst) != n {
				dst = make([]byte, n)
			}
			copy(dst, data[p.bodyStart:at])
			p.f.Body = dst
			p.f.Flag = flag
			return p.finish(at + len(p.prefix) + 3), nil
		case stSkip:
			at, _, need, ok := findEndLine(data, p.prefix, p.scan)
			if !ok {
				if need {
					p.scan = at
				} else {
					p.scan = max(0, len(data)-len(p.prefix)+1)
				}
				if len(data) >= p.lim.MaxFrameBytes {
					return nil, p.fatal(StatusStopSending, fmt.Errorf("%w: frame over %d bytes", ErrTooLarge, p.lim.MaxFrameBytes))
				}
				return nil, ErrNeedMore
			}
			perr := &ParseError{Err: p.skipErr, Code: p.skipCode, Frame: p.f}
			p.finish(at + len(p.prefix) + 3)
			return nil, perr
		}
	}
}

// checkSize fails a body that can no longer fit the limits.
func (p *Parser) checkSize(bodyBytes int) error {
	// The end-line still to come takes len(prefix)+3 bytes; what is
	// buffered beyond the body limit plus a partial end-line is body.
	if bodyBytes > p.lim.MaxBodyBytes+len(p.prefix)+2 {
		return p.fatal(StatusStopSending, fmt.Errorf("%w: body over %d bytes", ErrTooLarge, p.lim.MaxBodyBytes))
	}
	if p.bodyStart+bodyBytes >= p.lim.MaxFrameBytes {
		return p.fatal(StatusStopSending, fmt.Errorf("%w: frame over %d bytes", ErrTooLarge, p.lim.MaxFrameBytes))
	}
	return nil
}

// finish ends the current frame at relative offset end and returns it.
func (p *Parser) finish(end int) *Frame {
	f := p.f
	p.off += end
	p.state, p.line, p.scan, p.bodyStart = stStart, 0, 0, 0
	p.f, p.prefix, p.seen, p.nhdr, p.lastCT, p.skipErr, p.skipCode = nil, p.prefix[:0], 0, 0, false, nil, 0
	return f
}

// skip abandons the current frame: the parser looks for its end-line from
// relative offset from (which should be the CRLF before a line) and then
// reports err.
func (p *Parser) skip(code int, err error, from int) {
	p.state, p.skipErr, p.skipCode = stSkip, err, code
	p.scan = max(from, 0)
}

func (p *Parser) fatal(code int, err error) error {
	p.state = stDead
	return &ParseError{Err: err, Code: code, Fatal: true, Frame: p.f}
}

// startLine parses "MSRP SP tid SP method CRLF" or
// "MSRP SP tid SP code [SP comment] CRLF" (RFC 4975 s9).
func (p *Parser) startLine(line []byte) error {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return fmt.Errorf("%w: start line does not end with CRLF", ErrMalformed)
	}
	s := line[5 : len(line)-2]
	sp := bytes.IndexByte(s, ' ')
	if sp < 0 {
		return fmt.Errorf("%w: start line %q", ErrMalformed, line)
	}
	tid, rest := s[:sp], s[sp+1:]
	if !validTID(string(tid)) {
		return fmt.Errorf("%w: transaction id %q", ErrMalformed, tid)
	}
	f := &Frame{TID: string(tid)}
	switch {
	case len(rest) >= 3 && isDigit(rest[0]) && isDigit(rest[1]) && isDigit(rest[2]) && (len(rest) == 3 || rest[3] == ' '):
		f.Code, _ = strconv.Atoi(string(rest[:3]))
		if len(rest) > 4 {
			f.Reason = trimSpace(string(rest[4:]))
			if !validText(f.Reason) {
				return fmt.Errorf("%w: comment %q", ErrMalformed, rest[4:])
			}
		}
	case len(rest) > 0 && allBytes(string(rest), isUpper):
		f.Method = method(rest)
	default:
		return fmt.Errorf("%w: start line %q", ErrMalformed, line)
	}
	p.f = f
	p.prefix = append(append(p.prefix[:0], "\r\n-------"...), f.TID...)
	return nil
}

// method returns the constant for known methods, saving an allocation.
func method(b []byte) string {
	switch string(b) {
	case MethodSEND:
		return MethodSEND
	case MethodREPORT:
		return MethodREPORT
	case MethodNICKNAME:
		return MethodNICKNAME
	}
	return string(b)
}

// header parses one header line, CRLF included. Values that repeat from
// frame to frame (paths, Message-ID and Content-Type of the chunks of one
// message) are parsed once and reused.
func (p *Parser) header(line []byte) error {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return fmt.Errorf("%w: header line does not end with CRLF", ErrMalformed)
	}
	line = line[:len(line)-2]
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return fmt.Errorf("%w: header line without a colon", ErrMalformed)
	}
	name := line[:colon]
	value := bytes.Trim(line[colon+1:], " \t")
	if !validHeaderName(string(name)) {
		return fmt.Errorf("%w: header name %q", ErrMalformed, name)
	}
	if !validTextBytes(value) {
		return fmt.Errorf("%w: header %s: bad characters", ErrMalformed, name)
	}
	if p.lastCT {
		return fmt.Errorf("%w: header after Content-Type (RFC 4975 s7.1)", ErrMalformed)
	}
	p.nhdr++
	kind, known := headerKind(string(name))
	// RFC 4975 s7.1, CHAT-21a: To-Path first, From-Path second. Kamailio's
	// relay drops frames that break this (LIBRARIES.md).
	switch {
	case p.nhdr == 1 && (!known || kind != hToPath):
		return fmt.Errorf("%w: first header is not To-Path", ErrMalformed)
	case p.nhdr == 2 && (!known || kind != hFromPath):
		return fmt.Errorf("%w: second header is not From-Path", ErrMalformed)
	}
	if !known {
		p.f.Headers = append(p.f.Headers, Header{Name: string(name), Value: string(value)})
		return nil
	}
	bit := uint16(1) << kind
	if p.seen&bit != 0 {
		return fmt.Errorf("%w: repeated %s header", ErrMalformed, name)
	}
	p.seen |= bit
	var err error
	switch kind {
	case hToPath:
		p.f.ToPath, err = p.toPath.get(value)
	case hFromPath:
		p.f.FromPath, err = p.fromPath.get(value)
	case hMessageID:
		p.f.MessageID = p.messageID.get(value)
		if !validMessageID(p.f.MessageID) {
			err = fmt.Errorf("%w: Message-ID %q", ErrMalformed, value)
		}
	case hByteRange:
		var r ByteRange
		r, err = parseByteRange(value)
		p.f.ByteRange = &r
	case hSuccessReport:
		p.f.SuccessReport, err = reportValue(value, false)
	case hFailureReport:
		p.f.FailureReport, err = reportValue(value, true)
	case hStatus:
		var st Status
		st, err = ParseStatus(string(value))
		p.f.Status = &st
	case hContentType:
		if len(value) == 0 {
			err = fmt.Errorf("%w: empty Content-Type", ErrMalformed)
		}
		p.f.ContentType = p.contentType.get(value)
		p.lastCT = true
	}
	if err != nil && !errors.Is(err, ErrMalformed) {
		err = fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return err
}

// interned keeps the last string made from a header value.
type interned struct {
	raw []byte
	s   string
	ok  bool
}

func (c *interned) get(v []byte) string {
	if c.ok && bytes.Equal(c.raw, v) {
		return c.s
	}
	c.s, c.ok = string(v), true
	c.raw = append(c.raw[:0], v...)
	return c.s
}

// pathCache keeps the last path parsed from a header value. Each frame gets
// its own slice; the URLs' strings are shared (they are immutable).
type pathCache struct {
	raw  []byte
	path []URL
}

func (c *pathCache) get(v []byte) ([]URL, error) {
	if c.path == nil || !bytes.Equal(c.raw, v) {
		path, err := ParsePath(string(v))
		if err != nil {
			return nil, err
		}
		c.path = path
		c.raw = append(c.raw[:0], v...)
	}
	return append([]URL(nil), c.path...), nil
}

func reportValue(v []byte, partial bool) (string, error) {
	switch {
	case bytes.EqualFold(v, []byte(ReportYes)):
		return ReportYes, nil
	case bytes.EqualFold(v, []byte(ReportNo)):
		return ReportNo, nil
	case partial && bytes.EqualFold(v, []byte(ReportPartial)):
		return ReportPartial, nil
	}
	return "", fmt.Errorf("%w: report value %q", ErrMalformed, v)
}

// checkHeaders holds the rules on the whole header section.
func (p *Parser) checkHeaders(body bool) error {
	switch {
	case p.f.ToPath == nil || p.f.FromPath == nil:
		return fmt.Errorf("%w: To-Path and From-Path are required", ErrMalformed)
	case body && p.f.Method == "":
		return fmt.Errorf("%w: a response has no body", ErrMalformed)
	case body && p.f.ContentType == "":
		// RFC 4975 s7.1: a body comes after Content-Type; Kamailio drops
		// a frame with a body and no blank line after Content-Type.
		return fmt.Errorf("%w: a body without Content-Type", ErrMalformed)
	}
	return nil
}

// Reader reads frames from a stream through a Parser.
type Reader struct {
	r   io.Reader
	p   *Parser
	err error
}

// NewReader returns a Reader with the given limits.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{r: r, p: NewParser(lim)}
}

// ReadFrame returns the next frame. Errors are a *ParseError (after a
// non-fatal one, reading may go on), io.EOF at a clean end between frames,
// io.ErrUnexpectedEOF inside a frame, or the reader's error.
func (r *Reader) ReadFrame() (*Frame, error) {
	for {
		f, err := r.p.Next()
		if err != ErrNeedMore {
			return f, err
		}
		if r.err != nil {
			if r.err == io.EOF && r.p.Buffered() > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, r.err
		}
		var n int
		n, _, r.err = r.p.readFrom(r.r, 4096)
		if n == 0 && r.err == nil {
			r.err = io.ErrNoProgress
		}
	}
}
