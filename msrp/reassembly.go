package msrp

import "fmt"

// assembler puts chunked messages back together by Message-ID (RFC 4975
// s7.3.1, CHAT-26), possibly out of order, within the limits (CHAT-27).
// It belongs to one session's read goroutine.
type assembler struct {
	lim      Limits
	msgs     map[string]*assembly
	rejected [32]string // Message-IDs answered 413; their later chunks are dropped (TV-29b)
	next     int
}

type assembly struct {
	meta  *Frame // the first chunk received, replaced by the one at octet 1
	total int64  // Unknown until a chunk gives it
	buf   []byte
	have  []span // received octets, 0-based [from, to), sorted and merged
	end   int64  // end of the message (exclusive) once the '$' chunk came, else Unknown
}

type span struct{ from, to int64 }

func newAssembler(lim Limits) *assembler {
	return &assembler{lim: lim, msgs: make(map[string]*assembly)}
}

// add takes one SEND chunk. It returns the complete message when this chunk
// completes one, and the status the chunk gets: 200, 400 or 413.
func (a *assembler) add(f *Frame) (*Message, int, error) {
	id := f.MessageID
	if a.isRejected(id) {
		return nil, StatusStopSending, fmt.Errorf("%w: message %s already refused", ErrTooLarge, id)
	}
	body := f.Body
	r := ByteRange{Start: 1, End: int64(len(body)), Total: int64(len(body))}
	if f.ByteRange != nil {
		r = *f.ByteRange
	}
	// The body is authoritative for the end: an interrupted chunk's
	// range-end may be "*" or larger than what came (RFC 4975 s7.1).
	off := r.Start - 1
	end := off + int64(len(body))
	if r.Total != Unknown && end > r.Total {
		return nil, StatusBadRequest, fmt.Errorf("%w: chunk ends at %d past total %d", ErrMalformed, end, r.Total)
	}
	if end > a.lim.MaxMessageBytes || r.Total != Unknown && r.Total > a.lim.MaxMessageBytes {
		a.reject(id)
		return nil, StatusStopSending, fmt.Errorf("%w: message %s over %d octets", ErrTooLarge, id, a.lim.MaxMessageBytes)
	}
	asm := a.msgs[id]
	if f.Flag == FlagAborted {
		delete(a.msgs, id)
		return nil, StatusOK, nil
	}
	if asm == nil && off == 0 && f.Flag == FlagEnd && (r.Total == Unknown || r.Total == end) {
		// The whole message in one chunk: no copy.
		if f.Body == nil {
			return nil, StatusOK, nil // bodiless SEND (TV-28a)
		}
		return messageOf(f, body), StatusOK, nil
	}
	if asm == nil {
		if len(a.msgs) >= a.lim.MaxAssemblies {
			a.reject(id)
			return nil, StatusStopSending, fmt.Errorf("%w: more than %d messages in reassembly", ErrTooLarge, a.lim.MaxAssemblies)
		}
		asm = &assembly{meta: f, total: Unknown, end: Unknown}
		a.msgs[id] = asm
	}
	if asm.total == Unknown && r.Total != Unknown {
		asm.total = r.Total
	} else if r.Total != Unknown && r.Total != asm.total {
		delete(a.msgs, id)
		return nil, StatusBadRequest, fmt.Errorf("%w: message %s changes its total", ErrMalformed, id)
	}
	if asm.total != Unknown && end > asm.total {
		delete(a.msgs, id)
		return nil, StatusBadRequest, fmt.Errorf("%w: chunk ends at %d past total %d", ErrMalformed, end, asm.total)
	}
	if off == 0 {
		asm.meta = f
	}
	if need := end; int64(len(asm.buf)) < need {
		size := asm.total
		if size == Unknown {
			// Grow geometrically while the total is unknown ("*").
			size = max(need, min(2*int64(len(asm.buf)), a.lim.MaxMessageBytes))
		}
		nb := make([]byte, size)
		copy(nb, asm.buf)
		asm.buf = nb
	}
	if len(body) > 0 && &asm.buf[off] != &body[0] {
		copy(asm.buf[off:end], body)
	}
	asm.add(off, end)
	if f.Flag == FlagEnd {
		asm.end = end
	}
	size := asm.total
	if size == Unknown {
		size = asm.end
	}
	if asm.end == Unknown || !asm.covers(size) {
		return nil, StatusOK, nil
	}
	delete(a.msgs, id)
	m := messageOf(asm.meta, asm.buf[:size])
	m.ID = id
	return m, StatusOK, nil
}

func messageOf(f *Frame, body []byte) *Message {
	return &Message{
		ID:            f.MessageID,
		ContentType:   f.ContentType,
		Body:          body,
		SuccessReport: f.SuccessReport == ReportYes,
		FailureReport: f.FailureReport,
		Headers:       f.Headers,
		FromPath:      f.FromPath,
	}
}

func (a *assembler) reject(id string) {
	delete(a.msgs, id)
	if a.isRejected(id) {
		return
	}
	a.rejected[a.next] = id
	a.next = (a.next + 1) % len(a.rejected)
}

func (a *assembler) isRejected(id string) bool {
	for _, r := range a.rejected {
		if r == id && id != "" {
			return true
		}
	}
	return false
}

// add records octets [from, to). Chunks mostly come in order, which
// extends the last span.
func (m *assembly) add(from, to int64) {
	if from >= to {
		return
	}
	if n := len(m.have); n > 0 && m.have[n-1].from <= from && from <= m.have[n-1].to {
		m.have[n-1].to = max(m.have[n-1].to, to)
		return
	}
	i := 0
	for i < len(m.have) && m.have[i].from < from {
		i++
	}
	m.have = append(m.have, span{})
	copy(m.have[i+1:], m.have[i:])
	m.have[i] = span{from, to}
	merged := m.have[:1]
	for _, s := range m.have[1:] {
		last := &merged[len(merged)-1]
		if s.from <= last.to {
			last.to = max(last.to, s.to)
			continue
		}
		merged = append(merged, s)
	}
	m.have = merged
}

// covers reports whether octets [0, n) have all arrived.
func (m *assembly) covers(n int64) bool {
	if n == 0 {
		return true
	}
	return len(m.have) == 1 && m.have[0].from == 0 && m.have[0].to >= n
}

// place returns where the body of chunk f (n octets) belongs in the buffer
// of the message it continues, so that the parser copies it there once; nil
// when there is no such buffer yet.
func (a *assembler) place(f *Frame, n int) []byte {
	if f.Method != MethodSEND || f.Flag == FlagAborted || f.ByteRange == nil || n == 0 {
		return nil
	}
	asm := a.msgs[f.MessageID]
	if asm == nil || asm.total == Unknown {
		return nil
	}
	off := f.ByteRange.Start - 1
	if off < 0 || off+int64(n) > int64(len(asm.buf)) {
		return nil
	}
	return asm.buf[off : off+int64(n) : off+int64(n)]
}
