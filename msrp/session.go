package msrp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// interruptSlice is the piece size in which a chunk larger than it is
// written, checking between pieces whether to interrupt it (RFC 4975 s7.1,
// CHAT-26). Chunks up to this size are written whole, with a numeric
// range-end.
const interruptSlice = 16 << 10

// Reads offer between minRead and maxRead bytes: the offer doubles while
// reads fill it (bulk transfer, few system calls) and halves while they
// come back mostly empty (chat, little memory per idle session).
const (
	minRead = 4 << 10
	maxRead = 256 << 10
)

// Session is one MSRP session over one connection between the local URL
// and the remote path (RFC 4975 s5). It is safe for concurrent use.
//
// A dialled session (the active side, RFC 4975 s5.4) is connected when Dial
// returns. A session from Listener.Expect (the passive side) is bound when
// the peer connects and sends a request whose To-Path names it; until then
// Send waits. Either way, Close stops its goroutines and waits for them.
//
// Outgoing messages go out in the order Send was called, each split into
// chunks (CHAT-26); responses and reports owed to the peer go ahead of the
// next chunk.
type Session struct {
	cfg    config
	local  URL
	remote []URL
	from   []URL // From-Path of what we send: our URL
	log    *slog.Logger
	ids    *idSource
	lis    *Listener

	boundCh chan struct{} // closed once a connection is bound
	doneCh  chan struct{} // closed when the session ends
	wake    chan struct{} // wakes the writer
	wg      sync.WaitGroup
	// inClosed is set while Handler.Closed runs, so that a Close from it
	// does not wait for the goroutine that runs it.
	inClosed atomic.Bool

	mu         sync.Mutex
	conn       net.Conn
	done       bool
	err        error
	userClosed bool
	ctrl       []byte             // encoded responses and REPORTs owed to the peer
	nctrl      int                // frames in ctrl
	spare      []byte             // the writer's previous ctrl buffer, for reuse
	ctrlLazy   bool               // ctrl holds frames the writer was not woken for
	msgs       []*outMsg          // queued and partly sent messages, in order
	closeAfter error              // the writer flushes ctrl, then ends the session with this
	pending    map[string]*outMsg // transaction id -> request awaiting its response
	byID       map[string]*outMsg // Message-ID -> message not yet settled

	// Owned by the read goroutine.
	parser *Parser
	asm    *assembler
}

// outMsg is a message (or a single non-SEND request) on its way out.
type outMsg struct {
	msg        Message
	req        *Frame // a NICKNAME request, sent as is
	awaitResp  bool   // each chunk expects a response (Failure-Report yes)
	needReport bool   // Send waits for a success REPORT (Success-Report yes)

	// Owned by the writer goroutine.
	off int64

	// Guarded by Session.mu.
	tids        []string
	outstanding int  // chunks sent and not yet answered
	written     bool // every chunk was handed to the connection
	reported    assembly
	started     bool // a chunk went out
	abort       bool // send nothing more
	localAbort  bool // ... and end the message with '#'
	finished    bool
	err         error
	done        chan struct{}
	progress    chan struct{}
}

func newOutMsg() *outMsg {
	return &outMsg{done: make(chan struct{}), progress: make(chan struct{}, 1)}
}

func (om *outMsg) signal() {
	select {
	case om.progress <- struct{}{}:
	default:
	}
}

func newSession(local URL, remote []URL, lis *Listener, cfg config) (*Session, error) {
	if err := local.Validate(); err != nil {
		return nil, fmt.Errorf("%w: local URL: %v", ErrInvalid, err)
	}
	if local.SessionID == "" {
		return nil, fmt.Errorf("%w: local URL %s has no session-id", ErrInvalid, local)
	}
	if len(remote) == 0 {
		return nil, fmt.Errorf("%w: empty remote path", ErrInvalid)
	}
	for _, u := range remote {
		if err := u.Validate(); err != nil {
			return nil, fmt.Errorf("%w: remote path: %v", ErrInvalid, err)
		}
	}
	s := &Session{
		cfg:     cfg,
		local:   local,
		remote:  append([]URL(nil), remote...),
		from:    []URL{local},
		log:     cfg.log.With("msrp_session", local.SessionID),
		ids:     &idSource{r: cfg.random},
		lis:     lis,
		boundCh: make(chan struct{}),
		doneCh:  make(chan struct{}),
		wake:    make(chan struct{}, 1),
		pending: make(map[string]*outMsg),
		byID:    make(map[string]*outMsg),
		asm:     newAssembler(cfg.limits),
	}
	return s, nil
}

// Dial is the active side of RFC 4975 s5.4 (the offerer, CHAT-04): it
// connects to the first URL of the remote path (TCP, or TLS for msrps;
// several URLs mean relays, CHAT-05) and at once sends a bodiless SEND
// (Byte-Range 1-0/0) that binds the connection to the session at the other
// end. It returns when that SEND is answered 200, or with its error (a 481
// is a *StatusError).
func Dial(ctx context.Context, local URL, remote []URL, opts ...Option) (*Session, error) {
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	s, err := newSession(local, remote, nil, cfg)
	if err != nil {
		return nil, err
	}
	target := remote[0]
	d := cfg.dialer
	if d == nil {
		d = &net.Dialer{}
	}
	conn, err := d.DialContext(ctx, "tcp", target.Address())
	if err != nil {
		return nil, fmt.Errorf("msrp: dial %s: %w", target.Address(), err)
	}
	if target.Secure {
		tc := &tls.Config{}
		if cfg.tlsConfig != nil {
			tc = cfg.tlsConfig.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = target.Host
		}
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("msrp: TLS handshake with %s: %w", target.Address(), err)
		}
		conn = tconn
	}
	if err := s.bind(conn, NewParser(cfg.limits), nil); err != nil {
		conn.Close()
		return nil, err
	}
	if err := s.Send(ctx, &Message{}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

var errAlreadyBound = errors.New("msrp: session already bound to a connection")

// bind attaches conn and starts the read and write goroutines; first, when
// not nil, is the request that bound a passive session.
func (s *Session) bind(conn net.Conn, p *Parser, first *Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.closedErrLocked()
	}
	if s.conn != nil {
		return errAlreadyBound
	}
	s.conn = conn
	p.lim = s.cfg.limits
	p.bodyDst = s.asm.place
	s.parser = p
	s.wg.Add(2)
	close(s.boundCh)
	go s.readLoop(conn, first)
	go s.writeLoop(conn)
	return nil
}

// LocalURL returns the session's own URL.
func (s *Session) LocalURL() URL { return s.local }

// RemotePath returns the peer's path, relays first.
func (s *Session) RemotePath() []URL { return append([]URL(nil), s.remote...) }

// Bound is closed once a connection carries the session.
func (s *Session) Bound() <-chan struct{} { return s.boundCh }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.doneCh }

// Err returns why the session ended, or nil while it runs. It wraps
// ErrClosed, and the cause (ErrTimeout, a ParseError, an I/O error) when
// the session did not end by Close.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the session: pending Sends fail with ErrClosed, the connection
// is closed, and Close returns when the session's goroutines have stopped.
// It must not be called from a Handler function.
func (s *Session) Close() error {
	if s.inClosed.Load() {
		return nil // called from Handler.Closed: the session has ended
	}
	s.mu.Lock()
	if !s.done {
		s.userClosed = true
	}
	s.mu.Unlock()
	s.fail(ErrClosed)
	s.wg.Wait()
	return nil
}

// fail ends the session with err (which wraps ErrClosed).
func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	s.err = err
	close(s.doneCh)
	conn := s.conn
	for _, om := range s.msgs {
		s.finishLocked(om, err)
	}
	for _, om := range s.pending {
		s.finishLocked(om, err)
	}
	for _, om := range s.byID {
		s.finishLocked(om, err)
	}
	s.msgs, s.ctrl, s.nctrl = nil, nil, 0
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	if s.lis != nil {
		s.lis.unregister(s)
	}
	if err != ErrClosed {
		s.log.Debug("msrp session ended", "err", err)
	}
}

func (s *Session) closedErrLocked() error {
	if s.err != nil {
		return s.err
	}
	return ErrClosed
}

// closeAfterFlush has the writer send what is queued, then end the session
// (RFC 4975 s7.3: answer, then drop a connection that cannot go on).
func (s *Session) closeAfterFlush(err error) {
	s.mu.Lock()
	if !s.done && s.closeAfter == nil {
		s.closeAfter = err
	}
	s.mu.Unlock()
	s.wakeWriter()
}

func (s *Session) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finishLocked settles om once.
func (s *Session) finishLocked(om *outMsg, err error) {
	if om.finished {
		return
	}
	om.finished, om.err = true, err
	if err != nil {
		om.abort = true
	}
	for _, tid := range om.tids {
		if s.pending[tid] == om {
			delete(s.pending, tid)
		}
	}
	if om.msg.ID != "" && s.byID[om.msg.ID] == om {
		delete(s.byID, om.msg.ID)
	}
	close(om.done)
}

// maybeDoneLocked settles om with success when everything it waits for
// has come.
func (s *Session) maybeDoneLocked(om *outMsg) {
	if om.finished || !om.written || om.outstanding > 0 {
		return
	}
	if om.needReport && !om.reported.covers(int64(len(om.msg.Body))) {
		return
	}
	s.finishLocked(om, nil)
}

// Send sends m and waits: for the 200 of every chunk unless m.FailureReport
// is "no" or "partial" (CHAT-23), then for a success REPORT covering the
// whole message if m.SuccessReport (CHAT-40). Without either it returns
// once the last chunk is written. A chunk unanswered for the transaction
// timeout fails with ErrTimeout; an error response or failure REPORT with a
// *StatusError (after which nothing more of m is sent, RFC 4975 s10: 413
// means stop); the end of ctx with ErrTimeout (deadline) or ErrAborted
// (cancel), after which the rest of the message is abandoned with a '#'
// chunk. Send assigns m.ID when it is empty; the caller must not change m
// while Send runs.
func (s *Session) Send(ctx context.Context, m *Message) error {
	wait, err := s.Enqueue(m)
	if err != nil {
		return err
	}
	return wait(ctx)
}

// Enqueue queues m behind the messages already queued, as Send does, and
// returns at once with a function that waits for m's outcome exactly as
// Send would (call it once). Messages queued one after another leave in
// that order while their outcomes are awaited separately: a message
// waiting for its success REPORT does not hold up the next one.
func (s *Session) Enqueue(m *Message) (wait func(ctx context.Context) error, err error) {
	if m.ID == "" {
		id, err := s.ids.next()
		if err != nil {
			return nil, err
		}
		m.ID = id
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	om := newOutMsg()
	om.msg = *m
	om.msg.FromPath = nil
	om.awaitResp = m.wantsResponses()
	om.needReport = m.SuccessReport
	if err := s.enqueue(om); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return s.wait(ctx, om) }, nil
}

// SetNickname sends a NICKNAME request (RFC 7701 s7; MUC-40): nick "" asks
// to remove the nickname. It returns nil on 200 and a *StatusError
// otherwise (403, 424, 425). Send it only to a peer that advertised the
// "nickname" token (MUC-40d).
func (s *Session) SetNickname(ctx context.Context, nick string) error {
	v, err := QuoteNickname(nick)
	if err != nil {
		return err
	}
	om := newOutMsg()
	// RFC 7701 s9.2: no Success-Report or Failure-Report (MUC-40c).
	om.req = &Frame{
		Method:   MethodNICKNAME,
		ToPath:   s.remote,
		FromPath: s.from,
		Headers:  []Header{{Name: HeaderUseNickname, Value: v}},
		Flag:     FlagEnd,
	}
	om.awaitResp = true
	if err := s.enqueue(om); err != nil {
		return err
	}
	return s.wait(ctx, om)
}

func (s *Session) enqueue(om *outMsg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.closedErrLocked()
	}
	if len(s.msgs) >= s.cfg.queueSize {
		return ErrQueueFull
	}
	if id := om.msg.ID; id != "" {
		if s.byID[id] != nil {
			return fmt.Errorf("%w: Message-ID %s is already being sent", ErrInvalid, id)
		}
		s.byID[id] = om
	}
	s.msgs = append(s.msgs, om)
	s.wakeWriter()
	return nil
}

// wait waits for om to settle. The transaction timer runs only while
// responses are outstanding.
func (s *Session) wait(ctx context.Context, om *outMsg) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-om.done:
			return om.err
		case <-om.progress:
			s.mu.Lock()
			waiting := om.outstanding > 0
			s.mu.Unlock()
			if waiting {
				timer.Reset(s.cfg.txTimeout)
			} else {
				timer.Stop()
			}
		case <-timer.C:
			s.mu.Lock()
			if om.outstanding > 0 {
				s.finishLocked(om, fmt.Errorf("%w: no response within %v", ErrTimeout, s.cfg.txTimeout))
			}
			s.mu.Unlock()
			s.wakeWriter()
		case <-ctx.Done():
			err := fmt.Errorf("%w: %w", ErrAborted, ctx.Err())
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
			}
			s.mu.Lock()
			om.localAbort = true
			s.finishLocked(om, err)
			s.mu.Unlock()
			s.wakeWriter()
			<-om.done
			return om.err
		}
	}
}

// Report sends a REPORT about a received message (RFC 4975 s7.1.2): 200
// for success, only if m.SuccessReport (CHAT-42), any other code for
// failure, unless m.FailureReport is "no" (CHAT-23b). It carries the
// Message-ID, Byte-Range 1-N/N, Status "000 code reason" and no report
// headers, goes to m.FromPath, and gets no response. It only queues the
// frame, so Handler functions may call it.
func (s *Session) Report(m *Message, code int, reason string) error {
	if code == StatusOK && !m.SuccessReport || code != StatusOK && m.FailureReport == ReportNo {
		return ErrNotRequested
	}
	if len(m.FromPath) == 0 || !validMessageID(m.ID) {
		return fmt.Errorf("%w: not a received message", ErrInvalid)
	}
	if code < 100 || code > 999 {
		return fmt.Errorf("%w: status %d", ErrInvalid, code)
	}
	if reason == "" || !validText(reason) || reason != trimSpace(reason) {
		reason = ReasonPhrase(code)
	}
	tid, err := s.ids.next()
	if err != nil {
		return err
	}
	n := int64(len(m.Body))
	f := &Frame{
		TID:       tid,
		Method:    MethodREPORT,
		ToPath:    m.FromPath,
		FromPath:  s.from,
		MessageID: m.ID,
		ByteRange: &ByteRange{Start: 1, End: n, Total: n},
		Status:    &Status{Namespace: 0, Code: code, Reason: reason},
		Flag:      FlagEnd,
	}
	return s.queueCtrl(f)
}

// respond answers req as its Failure-Report asks (RFC 4975 s7.2, CHAT-22,
// CHAT-23): nothing for "no", only errors for "partial", nothing ever for a
// REPORT (s7.1.2). The response goes back on this connection, to the first
// From-Path URL, from our URL.
func (s *Session) respond(req *Frame, code int, reason string) error {
	return s.respondWake(req, code, reason, true)
}

// respondLazy is respond for the read goroutine (see queueCtrlWake).
func (s *Session) respondLazy(req *Frame, code int, reason string) {
	s.respondWake(req, code, reason, false)
}

func (s *Session) respondWake(req *Frame, code int, reason string, wake bool) error {
	f := responseFrame(req, code, reason, s.from)
	if f == nil {
		return nil
	}
	if code == StatusNoSession && len(req.ToPath) > 0 {
		f.FromPath = req.ToPath[:1]
	}
	return s.queueCtrlWake(f, wake)
}

// responseFrame builds the response to req, or nil when none is due.
func responseFrame(req *Frame, code int, reason string, from []URL) *Frame {
	if req.Method == "" || req.Method == MethodREPORT || len(req.FromPath) == 0 {
		return nil
	}
	switch req.FailureReport {
	case ReportNo:
		return nil
	case ReportPartial:
		if code == StatusOK {
			return nil
		}
	}
	if reason == "" || !validText(reason) || reason != trimSpace(reason) {
		reason = ReasonPhrase(code)
	}
	if len(from) == 0 {
		from = req.ToPath[:1]
	}
	return &Frame{TID: req.TID, Code: code, Reason: reason, ToPath: req.FromPath[:1], FromPath: from, Flag: FlagEnd}
}

// encodeTrusted encodes a frame the package built from validated parts.
func encodeTrusted(b []byte, f *Frame) []byte {
	b = f.appendHead(b)
	if f.Body != nil {
		b = append(b, f.Body...)
	}
	return appendEndLine(b, f.TID, f.Flag, f.Body != nil)
}

// queueCtrl queues a response or REPORT ahead of the next chunk. The read
// goroutine never blocks on it: a peer that makes us owe more than
// maxControlFrames without reading is cut off.
func (s *Session) queueCtrl(f *Frame) error {
	return s.queueCtrlWake(f, true)
}

// queueCtrlWake queues f; without wake the writer is woken later, when the
// read goroutine runs out of buffered input (flushCtrl), so that the
// responses to the frames of one read go out in one write.
func (s *Session) queueCtrlWake(f *Frame, wake bool) error {
	s.mu.Lock()
	if s.done {
		err := s.closedErrLocked()
		s.mu.Unlock()
		return err
	}
	if s.nctrl >= maxControlFrames {
		s.mu.Unlock()
		s.fail(fmt.Errorf("%w: peer does not read its responses", ErrClosed))
		return ErrQueueFull
	}
	s.ctrl = encodeTrusted(s.ctrl, f)
	s.nctrl++
	if !wake {
		s.ctrlLazy = true
		s.mu.Unlock()
		return nil
	}
	s.ctrlLazy = false
	s.mu.Unlock()
	s.wakeWriter()
	return nil
}

// flushCtrl wakes the writer for frames queued without waking it.
func (s *Session) flushCtrl() {
	s.mu.Lock()
	lazy := s.ctrlLazy
	s.ctrlLazy = false
	s.mu.Unlock()
	if lazy {
		s.wakeWriter()
	}
}

// deadlineWriter bounds each write (a peer that stops reading).
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

// writeLoop owns every write to the connection.
func (s *Session) writeLoop(conn net.Conn) {
	defer s.wg.Done()
	w := NewWriter(deadlineWriter{c: conn, d: s.cfg.writeTimeout})
	var flushed []*outMsg // messages whose last bytes wait in w
	flush := func() bool {
		if err := w.Flush(); err != nil {
			s.fail(ioErr(err))
			return false
		}
		if len(flushed) > 0 {
			s.mu.Lock()
			for _, om := range flushed {
				om.written = true
				s.maybeDoneLocked(om)
				om.signal()
			}
			s.mu.Unlock()
			flushed = flushed[:0]
		}
		return true
	}
	for {
		s.mu.Lock()
		for !s.done && s.nctrl == 0 && s.closeAfter == nil && len(s.msgs) == 0 {
			s.mu.Unlock()
			if !flush() {
				return
			}
			select {
			case <-s.wake:
			case <-s.doneCh:
			}
			s.mu.Lock()
		}
		if s.done {
			s.mu.Unlock()
			return
		}
		ctrl := s.ctrl
		s.ctrl, s.spare, s.nctrl = s.spare[:0], nil, 0
		closeAfter := s.closeAfter
		var om *outMsg
		if len(s.msgs) > 0 {
			om = s.msgs[0]
		}
		s.mu.Unlock()

		w.buf = append(w.buf, ctrl...)
		s.mu.Lock()
		if s.spare == nil && cap(ctrl) <= 64<<10 {
			s.spare = ctrl[:0]
		}
		s.mu.Unlock()
		if closeAfter != nil {
			flush()
			s.fail(closeAfter)
			return
		}
		if om != nil {
			last, err := s.writeStep(w, om)
			if err != nil {
				s.fail(err)
				return
			}
			if last {
				flushed = append(flushed, om)
				if !flush() {
					return
				}
			}
		}
		if w.Buffered() >= writerFlushSize && !flush() {
			return
		}
	}
}

// writeStep writes the next chunk of om (or all of a single request) and
// reports whether om is now completely written. The body is read only
// under s.mu and only while om is live: once Send has returned (settled
// under s.mu), the session no longer reads m.Body.
func (s *Session) writeStep(w *Writer, om *outMsg) (bool, error) {
	var f *Frame
	var body []byte
	total := int64(len(om.msg.Body))
	end := om.off
	if om.req != nil {
		f = om.req
	} else {
		end = min(om.off+int64(s.cfg.chunkSize), total)
		f = om.msg.chunk(s.remote, s.from, om.off, end)
		body = f.Body
	}
	s.mu.Lock()
	if om.abort {
		local, started := om.localAbort, om.started
		s.mu.Unlock()
		if local && started && om.req == nil && om.off < total {
			// RFC 4975 s7.1: abandon the message with '#' (a bodiless
			// chunk where the next one would start).
			f := om.msg.chunk(s.remote, s.from, om.off, om.off)
			f.Body, f.ContentType, f.Flag = nil, "", FlagAborted
			tid, err := s.ids.next()
			if err != nil {
				return false, err
			}
			f.TID = tid
			w.buf = encodeTrusted(w.buf, f)
		}
		s.pop(om)
		return false, nil
	}
	var tid string
	var err error
	if om.req != nil {
		tid, err = s.ids.next()
	} else {
		tid, err = s.ids.chunkTID(body)
	}
	if err != nil {
		s.mu.Unlock()
		return false, err
	}
	f.TID = tid
	if om.awaitResp {
		s.pending[tid] = om
		om.tids = append(om.tids, tid)
		om.outstanding++
	}
	om.started = true
	if len(body) <= interruptSlice {
		w.buf = encodeTrusted(w.buf, f)
		s.mu.Unlock()
		om.off = end
	} else {
		// An interruptible chunk: range-end "*", written in slices.
		f.ByteRange.End = Unknown
		w.buf = f.appendHead(w.buf)
		w.tid, w.inBody = tid, true
		w.buf = append(w.buf, body[:interruptSlice]...)
		written := interruptSlice
		s.mu.Unlock()
		for written < len(body) {
			if err := w.maybeFlush(); err != nil {
				return false, ioErr(err)
			}
			s.mu.Lock()
			abort, ctrlWaiting := om.abort, s.nctrl > 0
			if !abort && !ctrlWaiting {
				n := min(interruptSlice, len(body)-written)
				w.buf = append(w.buf, body[written:written+n]...)
				written += n
				s.mu.Unlock()
				continue
			}
			s.mu.Unlock()
			flag := FlagContinued // yield to responses; the rest follows
			if abort {
				flag = FlagAborted
			}
			if err := w.EndChunk(flag); err != nil {
				return false, err
			}
			om.off += int64(written)
			om.signal()
			if abort {
				s.pop(om)
			}
			return false, nil
		}
		if err := w.EndChunk(f.Flag); err != nil {
			return false, err
		}
		om.off = end
	}
	om.signal()
	if om.req != nil || om.off >= total {
		s.pop(om)
		return true, nil
	}
	if err := w.maybeFlush(); err != nil {
		return false, ioErr(err)
	}
	return false, nil
}

// pop removes om from the head of the queue.
func (s *Session) pop(om *outMsg) {
	s.mu.Lock()
	if len(s.msgs) > 0 && s.msgs[0] == om {
		s.msgs[0] = nil
		s.msgs = s.msgs[1:]
	}
	s.mu.Unlock()
}

func ioErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w: %w", ErrClosed, ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrClosed, err)
}

// readLoop owns every read from the connection and handles what arrives.
func (s *Session) readLoop(conn net.Conn, first *Frame) {
	defer s.wg.Done()
	defer func() {
		<-s.doneCh // the writer may still be flushing a last response
		s.mu.Lock()
		user, err := s.userClosed, s.err
		s.mu.Unlock()
		if !user && s.cfg.handler.Closed != nil {
			s.inClosed.Store(true)
			s.cfg.handler.Closed(s, err)
			s.inClosed.Store(false)
		}
	}()
	if first != nil {
		s.handle(first)
	}
	var readErr error
	var frameStart, deadline time.Time
	hint := minRead
	for {
		f, err := s.parser.Next()
		if err == nil {
			frameStart = time.Time{}
			s.handle(f)
			continue
		}
		if err != ErrNeedMore {
			var perr *ParseError
			if !errors.As(err, &perr) {
				s.fail(fmt.Errorf("%w: %w", ErrClosed, err))
				return
			}
			if !s.onParseError(perr) {
				return
			}
			frameStart = time.Time{}
			continue
		}
		s.flushCtrl()
		if readErr != nil {
			if readErr == io.EOF && s.parser.Buffered() > 0 {
				readErr = io.ErrUnexpectedEOF
			}
			s.fail(ioErr(readErr))
			return
		}
		// Slow-loris protection: a frame must complete within the frame
		// timeout of its first byte; between frames the idle timeout
		// applies, if any.
		var want time.Time
		if s.parser.Buffered() > 0 {
			if frameStart.IsZero() {
				frameStart = time.Now()
			}
			want = frameStart.Add(s.cfg.frameTimeout)
		} else if s.cfg.idleTimeout > 0 {
			want = time.Now().Add(s.cfg.idleTimeout)
		}
		if !want.Equal(deadline) {
			if err := conn.SetReadDeadline(want); err != nil {
				s.fail(ioErr(err))
				return
			}
			deadline = want
		}
		var n, offered int
		n, offered, readErr = s.parser.readFrom(conn, hint)
		switch {
		case n == offered && hint < maxRead:
			hint *= 2
		case n < offered/4 && hint > minRead:
			hint /= 2
		}
		s.parser.keep = 2 * hint
	}
}

// onParseError answers a frame the parser refused (400, or 413 for one
// over the limits) and reports whether reading can go on. An oversized or
// unreadable frame ends the session after the answer (connection
// protection).
func (s *Session) onParseError(perr *ParseError) bool {
	s.log.Debug("msrp frame refused", "err", perr)
	if f := perr.Frame; f != nil && f.Method != "" && len(f.FromPath) > 0 && len(f.ToPath) > 0 {
		s.respondLazy(f, perr.Code, "")
	}
	if perr.Fatal {
		s.closeAfterFlush(fmt.Errorf("%w: %w", ErrClosed, perr))
		return false
	}
	return true
}

// handle dispatches one frame.
func (s *Session) handle(f *Frame) {
	if f.IsResponse() {
		s.onResponse(f)
		return
	}
	// RFC 4975 s7.3: the leftmost To-Path URL must be ours (CHAT-11a).
	// One connection carries one session here: a request for another
	// session on it gets 481.
	if !f.ToPath[0].Equal(s.local) {
		s.respondLazy(f, StatusNoSession, "")
		return
	}
	switch f.Method {
	case MethodSEND:
		s.onSend(f)
	case MethodREPORT:
		s.onReport(f)
	case MethodNICKNAME:
		s.onNickname(f)
	default:
		s.respondLazy(f, StatusUnknownMethod, "") // RFC 4975 s12, CHAT-24
	}
}

// onResponse settles the transaction it answers. A response for no pending
// transaction (a duplicate, or a late one) is ignored: some peers send
// responses twice.
func (s *Session) onResponse(f *Frame) {
	s.mu.Lock()
	om := s.pending[f.TID]
	if om == nil {
		s.mu.Unlock()
		s.log.Debug("msrp response for no pending transaction", "tid", f.TID, "code", f.Code)
		return
	}
	delete(s.pending, f.TID)
	om.outstanding--
	if f.Code != StatusOK {
		s.finishLocked(om, &StatusError{Code: f.Code, Reason: f.Reason})
		s.mu.Unlock()
		s.wakeWriter()
		return
	}
	s.maybeDoneLocked(om)
	s.mu.Unlock()
	om.signal()
}

func (s *Session) onSend(f *Frame) {
	if f.MessageID == "" {
		s.respondLazy(f, StatusBadRequest, "Missing Message-ID") // CHAT-21b
		return
	}
	if f.Body != nil && !mediaTypeAccepted(f.ContentType, s.cfg.acceptTypes) {
		s.respondLazy(f, StatusUnsupportedMedia, "") // CHAT-24
		return
	}
	m, code, err := s.asm.add(f)
	if err != nil {
		s.log.Debug("msrp chunk refused", "message_id", f.MessageID, "err", err)
	}
	s.respondLazy(f, code, "")
	if m == nil {
		return
	}
	if h := s.cfg.handler.Message; h != nil {
		h(s, m)
	}
	if m.SuccessReport && !s.cfg.manualReports {
		if err := s.Report(m, StatusOK, ""); err != nil {
			s.log.Debug("msrp success report not sent", "err", err)
		}
	}
}

func (s *Session) onReport(f *Frame) {
	// REPORTs are never answered (RFC 4975 s7.1.2, TV-31).
	if f.MessageID == "" || f.Status == nil {
		s.log.Debug("msrp REPORT without Message-ID or Status ignored", "tid", f.TID)
		return
	}
	s.mu.Lock()
	if om := s.byID[f.MessageID]; om != nil && !om.finished {
		if f.Status.Code != StatusOK {
			s.finishLocked(om, f.Status.Err())
			s.mu.Unlock()
			s.wakeWriter()
			return
		}
		if om.needReport {
			total := int64(len(om.msg.Body))
			from, to := int64(0), total
			if r := f.ByteRange; r != nil {
				from = r.Start - 1
				if r.End != Unknown {
					to = min(r.End, total)
				}
			}
			om.reported.add(from, to)
			s.maybeDoneLocked(om)
			s.mu.Unlock()
			return
		}
	}
	s.mu.Unlock()
	if h := s.cfg.handler.Report; h != nil {
		h(s, &Report{MessageID: f.MessageID, Status: *f.Status, ByteRange: f.ByteRange, FromPath: f.FromPath, Headers: f.Headers})
	}
}

func (s *Session) onNickname(f *Frame) {
	h := s.cfg.handler.Nickname
	if h == nil {
		s.respondLazy(f, StatusUnknownMethod, "")
		return
	}
	nick, err := f.Nickname()
	if err != nil {
		s.respondLazy(f, StatusMalformedNickname, "") // RFC 7701 s10.3, D4
		return
	}
	h(s, &NicknameRequest{Nickname: nick, s: s, req: f})
}
