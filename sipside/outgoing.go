package sipside

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// OutgoingMessage is a page-mode MESSAGE to send (RFC 3428; IM-03).
type OutgoingMessage struct {
	RequestURI, From, To string // URIs; From gets a fresh tag; To gets none (IM-05)
	// FromDisplay is an optional display name for From (cleaned like
	// Subject).
	FromDisplay string
	CallID      string // "" = fresh random Call-ID
	Subject     string
	ContentType string // "" = text/plain;charset=UTF-8 (IM-06)
	// ContentLanguage is a language tag list (IM-09), "" for none.
	ContentLanguage string
	Body            []byte
	// Timeout, when positive, bounds the wait for the final response (and,
	// on paths that resolve or dial, the whole send) like a context
	// deadline, without the cost of a timer per message: the fast path
	// checks it with its own timers.
	Timeout time.Duration
}

// Result is the outcome of SendMessage: the final response.
type Result struct {
	Code    int    // final status code
	Reason  string // reason phrase as received
	Contact string // first Contact URI of a 3xx, if any
	Parts   int    // number of MESSAGEs sent (>1 when chunked)
}

// Err returns nil for a 2xx result and a *StatusError otherwise.
func (r Result) Err() error {
	if r.Code >= 200 && r.Code < 300 {
		return nil
	}
	return &StatusError{Code: r.Code, Reason: r.Reason}
}

const defaultContentType = "text/plain;charset=UTF-8"

// prepared is an OutgoingMessage after checking and cleaning.
type prepared struct {
	ruri, from, to sip.Uri
	// The same URIs as given, when uriParts accepts them (then they are
	// written as given and parsed only when needed: parseURIs); "" when
	// parsed at once.
	rawRURI, rawFrom, rawTo string
	parsed                  bool
	display                 string
	callID                  string
	subject                 string
	ctype                   string
	lang                    string
	body                    []byte
	tag                     string
	ownCallID               bool // the Call-ID is ours (the caller gave none)
}

// prepare checks every caller value that goes into a header. URIs, the
// Call-ID, Content-Type and Content-Language are refused with
// ErrHeaderValue when unsafe; Subject and FromDisplay are cleaned (control
// characters become spaces) since they are free text.
func prepare(m *OutgoingMessage) (*prepared, error) {
	p, err := prepareLazy(m)
	if err == nil {
		err = p.parseURIs()
	}
	return p, err
}

// prepareLazy is prepare that leaves URIs of the plain shape (uriParts)
// unparsed: the fast path writes them as given.
func prepareLazy(m *OutgoingMessage) (*prepared, error) {
	p := &prepared{body: m.Body}
	for _, f := range [...]struct {
		field string
		in    string
		raw   *string
		uri   *sip.Uri
	}{
		{"Request-URI", m.RequestURI, &p.rawRURI, &p.ruri},
		{"From", m.From, &p.rawFrom, &p.from},
		{"To", m.To, &p.rawTo, &p.to},
	} {
		if _, _, ok := uriParts(f.in); ok {
			*f.raw = f.in
			continue
		}
		var err error
		if *f.uri, err = parseURI(f.field, f.in); err != nil {
			return nil, err
		}
	}
	p.callID = m.CallID
	if p.callID == "" {
		p.callID = token()
		p.ownCallID = true
	} else if err := checkCallID(p.callID); err != nil {
		return nil, err
	}
	p.ctype = m.ContentType
	if p.ctype == "" {
		p.ctype = defaultContentType
	} else if !isMediaType(p.ctype) {
		return nil, fmt.Errorf("%w: Content-Type %q", ErrHeaderValue, p.ctype)
	}
	if m.ContentLanguage != "" {
		if err := checkLanguage(m.ContentLanguage); err != nil {
			return nil, err
		}
		p.lang = m.ContentLanguage
	}
	p.subject = cleanText(m.Subject)
	p.display = quoteDisplay(m.FromDisplay)
	p.tag = token()
	return p, nil
}

// parseURIs parses the URIs prepareLazy left as given.
func (p *prepared) parseURIs() error {
	if p.parsed {
		return nil
	}
	for _, f := range [...]struct {
		field string
		raw   string
		uri   *sip.Uri
	}{
		{"Request-URI", p.rawRURI, &p.ruri},
		{"From", p.rawFrom, &p.from},
		{"To", p.rawTo, &p.to},
	} {
		if f.raw == "" {
			continue
		}
		var err error
		if *f.uri, err = parseURI(f.field, f.raw); err != nil {
			return err
		}
	}
	p.parsed = true
	return nil
}

// SendMessage sends one MESSAGE (or its chunks) and waits for the final
// response. A final response of any class is a Result with a nil error (see
// Result.Err). Errors, wrapped with %w:
//   - ErrHeaderValue: a value cannot go into a header safely;
//   - ErrTooLarge: over UDP above 1300 bytes with policy "reject", or a body
//     that cannot be chunked;
//   - ErrTimeout: no final response within the transaction timeout or
//     before ctx's deadline (the result of a chunked send tells how many
//     parts went out);
//   - ErrTransport: the next hop cannot be resolved, reached or written to;
//   - ErrNotStarted, ErrClosed; ctx's error when ctx is cancelled.
func (u *UA) SendMessage(ctx context.Context, m *OutgoingMessage) (Result, error) {
	if m == nil {
		return Result{}, fmt.Errorf("%w: nil message", ErrHeaderValue)
	}
	u.mu.Lock()
	st, closed := u.state, u.closed
	if !closed && st != nil {
		u.wg.Add(1)
	}
	u.mu.Unlock()
	switch {
	case closed:
		return Result{}, ErrClosed
	case st == nil:
		return Result{}, ErrNotStarted
	}
	defer u.leave()

	p, err := prepareLazy(m)
	if err != nil {
		return Result{}, err
	}
	var deadline time.Time // of m.Timeout, zero for none
	if m.Timeout > 0 {
		deadline = time.Now().Add(m.Timeout)
	}
	// Close ends every send: the waits below watch u.ctx themselves. A
	// context that Close cancels (one more context and an AfterFunc
	// registered on the UA's shared context, per message) is derived only
	// where a wait happens inside a call we make: DNS lookups and dialing
	// a TCP/TLS connection.
	select {
	case u.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{}, u.ctxErr(ctx, "waiting for a transaction slot")
	case <-u.ctx.Done():
		return Result{}, ErrClosed
	}
	defer func() { <-u.slots }()

	tg, static := u.proxyTarget, u.proxyTarget.transport != ""
	if !static && !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	if !static {
		if err := p.parseURIs(); err != nil {
			return Result{}, err
		}
		if tg, err = u.resolveTarget(ctx, &p.ruri); err != nil {
			return Result{}, err
		}
	}
	if res, err, ok := u.sendFast(ctx, st, p, tg, deadline); ok {
		res.Parts = 1
		return res, err
	}
	if static && !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	if err := p.parseURIs(); err != nil {
		return Result{}, err
	}
	u.usualOut.Add(1)
	req := u.build(st, p, p.body, tg)
	if tg.transport == "UDP" && !u.fitsUDP(st, p, tg) {
		if size := requestSize(req) + sentByMargin(st, tg); size > udpSizeLimit {
			switch u.cfg.large {
			case LargeReject:
				return Result{}, fmt.Errorf("%w: %d bytes over udp, limit %d (RFC 3261 §18.1.1)", ErrTooLarge, size, udpSizeLimit)
			case LargeChunk:
				return u.sendChunks(ctx, st, p, tg)
			default: // LargeTCP: same next hop, over TCP (D1)
				tg.transport = "TCP"
				req = u.build(st, p, p.body, tg)
			}
		}
	}
	res, err := u.transact(ctx, req)
	res.Parts = 1
	return res, err
}

// fitsUDP reports, without serialising the request, that it is certainly
// within the UDP limit because an upper bound of its size is. URIs are
// counted twice over (as given and as sipgo may write them); the fixed
// parts (start line, header names, Max-Forwards, CSeq, Content-Length, the
// Via branch) are 512 bytes at most; User-Agent and Route are counted in
// u.headerExtra. Only requests near the limit pay for requestSize.
func (u *UA) fitsUDP(st *startedState, p *prepared, tg target) bool {
	const fixed = 512
	n := fixed + u.headerExtra + len(p.body) + len(p.callID) + len(p.subject) + len(p.ctype) + len(p.lang) +
		len(p.display) + len(p.tag) + 2*(2*uriLen(&p.ruri)+uriLen(&p.from)+uriLen(&p.to)) + sentByMargin(st, tg)
	if sb, ok := st.sentBy[tg.transport]; ok {
		n += len(sb.host) + 6
	}
	return n <= udpSizeLimit
}

// uriLen bounds the length of u as written.
func uriLen(u *sip.Uri) int {
	n := len(u.Scheme) + 1 + len(u.User) + 1 + len(u.Password) + 1 + len(u.Host) + 8
	for _, kv := range u.UriParams {
		n += len(kv.K) + len(kv.V) + 2
	}
	for _, kv := range u.Headers {
		n += len(kv.K) + len(kv.V) + 2
	}
	return n
}

// sendChunks splits a text body on UTF-8 boundaries so that each whole
// request is at most 1300 bytes, and sends the parts one after another,
// each after the previous one's final response (IM-12 a-e; RFC 3428 §8). It
// stops at the first failure and reports it. Each part is a page-mode
// MESSAGE of its own (IM-05): a fresh From tag, and a fresh Call-ID unless
// the caller chose one (an XMPP thread), so no receiver sees a dialog.
func (u *UA) sendChunks(ctx context.Context, st *startedState, p *prepared, tg target) (Result, error) {
	if !strings.HasPrefix(strings.ToLower(p.ctype), "text/") {
		return Result{}, fmt.Errorf("%w: cannot split a %s body", ErrTooLarge, p.ctype)
	}
	rest := p.body
	var res Result
	for i := 0; len(rest) > 0; i++ {
		if i > 0 {
			next := *p
			next.tag = token()
			if p.ownCallID {
				next.callID = token()
			}
			p = &next
		}
		req := u.build(st, p, nil, tg)
		base := requestSize(req) + sentByMargin(st, tg)
		n := utf8Cut(rest, maxChunk(base, len(rest)))
		if n <= 0 {
			return Result{Parts: i}, fmt.Errorf("%w: headers alone take %d bytes", ErrTooLarge, base)
		}
		req.SetBody(rest[:n])
		r, err := u.transact(ctx, req)
		r.Parts = i + 1
		res = r
		if err != nil || r.Code >= 300 {
			return res, err
		}
		rest = rest[n:]
	}
	return res, nil
}

// maxChunk returns the largest body size n <= avail such that a request
// whose size with an empty body (Content-Length: 0) is base stays within the
// UDP limit: base + n + len(itoa(n)) - 1 <= 1300.
func maxChunk(base, avail int) int {
	for n := min(avail, udpSizeLimit-base); n > 0; n-- {
		if base+n+decimalDigits(n)-1 <= udpSizeLimit {
			return n
		}
	}
	return 0
}

func decimalDigits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// utf8Cut moves n back to the start of a UTF-8 sequence (IM-12 c).
func utf8Cut(b []byte, n int) int {
	if n >= len(b) {
		return len(b)
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return n
}

// build makes the request. Every header is set here, Via included (sent-by
// is our listener for the transport, when there is one), so that sipgo adds
// nothing and requestSize is the size on the wire.
func (u *UA) build(st *startedState, p *prepared, body []byte, tg target) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, p.ruri)
	req.AppendHeader(newVia(st, tg.transport))
	maxFwd := sip.MaxForwardsHeader(70) // ADDR-15, RFC 3261 §8.1.1.6
	req.AppendHeader(&maxFwd)
	if u.route != nil {
		req.AppendHeader(&sip.RouteHeader{Address: *u.route})
	}
	from := &sip.FromHeader{DisplayName: p.display, Address: p.from, Params: sip.NewParams()}
	from.Params.Add("tag", p.tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: p.to}) // no tag (IM-05)
	callID := sip.CallIDHeader(p.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	req.AppendHeader(sip.NewHeader("User-Agent", u.uaString))
	ctype := sip.ContentTypeHeader(p.ctype)
	req.AppendHeader(&ctype)
	if p.lang != "" {
		req.AppendHeader(sip.NewHeader("Content-Language", p.lang))
	}
	if p.subject != "" {
		req.AppendHeader(sip.NewHeader("Subject", p.subject))
	}
	// No Contact (IM-04).
	req.SetBody(body)
	req.SetTransport(tg.transport)
	req.SetDestination(tg.dest)
	if tg.transport == "UDP" && st.udpLaddr.IP != nil {
		// Send from the UDP listener: responses come back to the address
		// in Via, and sipgo keeps no extra socket.
		st.udpLaddr.Copy(&req.Laddr)
	}
	return req
}

// newVia is the Via of a request we send over transport: sent-by our
// listener of that transport when there is one (else sipgo fills it in), a
// fresh branch, rport (RFC 3581).
func newVia(st *startedState, transport string) *sip.ViaHeader {
	via := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       transport,
		Params:          sip.NewParams(),
	}
	if sb, ok := st.sentBy[transport]; ok {
		via.Host, via.Port = sb.host, sb.port
	}
	via.Params.Add("branch", sip.RFC3261BranchMagicCookie+token())
	via.Params.Add("rport", "")
	return via
}

type countWriter int

func (c *countWriter) WriteString(s string) (int, error) {
	*c += countWriter(len(s))
	return len(s), nil
}

// requestSize is the size of req as sipgo writes it: start line, CRLF,
// headers each ending in CRLF, CRLF, body.
func requestSize(req *sip.Request) int {
	var cw countWriter
	req.StartLineWrite(&cw)
	req.MessageData.StringWrite(&cw)
	return int(cw) + 4 + len(req.Body())
}

// sentByMargin is added to the size when the Via sent-by is left to sipgo
// (no listener for the transport): the longest host:port it can write.
func sentByMargin(st *startedState, tg target) int {
	if sb, ok := st.sentBy[tg.transport]; ok && sb.host != "" && sb.port != 0 {
		return 0
	}
	return len("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
}

// noBuild keeps sipgo from adding or changing headers: build sets them all.
func noBuild(*sipgo.Client, *sip.Request) error { return nil }

// transact runs one client transaction and waits for its final response.
// The first final response wins; later ones (forks, retransmissions) are
// ignored (IM-15).
func (u *UA) transact(ctx context.Context, req *sip.Request) (Result, error) {
	return u.transactWith(ctx, req, nil)
}

// transactWith is transact that also hands the final response to onFinal
// (when not nil) before returning.
func (u *UA) transactWith(ctx context.Context, req *sip.Request, onFinal func(*sip.Response)) (Result, error) {
	// Timer F as our own timer: sipgo's timers are package globals.
	timerF := time.NewTimer(u.cfg.txTimeout)
	defer timerF.Stop()
	if u.log.Enabled(ctx, slog.LevelDebug) {
		u.log.Debug("sip request", "data", req.String())
	}
	txCtx := ctx
	if req.Transport() != "UDP" || !isIPHostPort(req.Destination()) {
		// sipgo may dial a connection or resolve a name under this
		// context: Close and Timer F must be able to stop it. (Over UDP to
		// an IP it writes on the pooled listener and waits for nothing.)
		var cancel context.CancelFunc
		txCtx, cancel = context.WithTimeout(ctx, u.cfg.txTimeout)
		defer cancel()
		stop := context.AfterFunc(u.ctx, cancel)
		defer stop()
	}
	tx, err := u.cli.TransactionRequest(txCtx, req, noBuild)
	if err != nil {
		switch {
		case errors.Is(err, sip.ErrUDPMTUCongestion):
			return Result{}, fmt.Errorf("%w: %w", ErrTooLarge, err)
		case txCtx.Err() != nil:
			return Result{}, u.ctxErr(txCtx, "connecting")
		}
		return Result{}, fmt.Errorf("%w: %s %s: %w", ErrTransport, strings.ToLower(req.Transport()), req.Destination(), err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if onFinal != nil {
				onFinal(res)
			}
			return resultOf(res), nil
		case <-tx.Done():
			err := tx.Err()
			switch {
			case u.ctx.Err() != nil:
				return Result{}, ErrClosed
			case errors.Is(err, sip.ErrTransactionTimeout):
				return Result{}, fmt.Errorf("%w: %w", ErrTimeout, err)
			}
			return Result{}, fmt.Errorf("%w: %w", ErrTransport, err)
		case <-timerF.C:
			return Result{}, fmt.Errorf("%w: waiting for a final response: %w", ErrTimeout, context.DeadlineExceeded)
		case <-ctx.Done():
			return Result{}, u.ctxErr(ctx, "waiting for a final response")
		case <-u.ctx.Done():
			return Result{}, ErrClosed
		}
	}
}

// isIPHostPort reports whether hp is an IP literal with a port.
func isIPHostPort(hp string) bool {
	_, err := netip.ParseAddrPort(hp)
	return err == nil
}

// ctxErr turns the end of ctx into our error: ErrClosed when the UA is
// closing, ErrTimeout for a deadline, else the context's own error.
func (u *UA) ctxErr(ctx context.Context, what string) error {
	switch {
	case u.ctx.Err() != nil:
		return ErrClosed
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, ctx.Err())
	}
	return fmt.Errorf("sipside: %s: %w", what, ctx.Err())
}

func resultOf(res *sip.Response) Result {
	r := Result{Code: res.StatusCode, Reason: res.Reason}
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		if c := res.Contact(); c != nil {
			r.Contact = c.Address.String()
		}
	}
	return r
}
