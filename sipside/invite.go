package sipside

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// INVITE sessions (RFC 3261 §13-15) carrying the SDP of MSRP chats (RFC
// 7573 §4, §5; CHAT-*). sipside does the SIP part only: the offer and the
// answer are opaque bytes here (sipside/sdp builds and reads them).
//
// Why not sipgo's dialog layer (DialogUA, DialogServerCache,
// DialogClientCache)? Its transactions are what we use, but its sessions do
// not fit a gateway that must stop cleanly and keep its own header rules:
//   - the UAS 2xx retransmission (DialogServerSession.WriteResponse) resends
//     at T1 and then every T2 instead of doubling, and its 64*T1 give-up is
//     a time.After re-created on every turn of the loop, so it never fires:
//     the loop ends only when Timer L kills the transaction, and nothing
//     sends the BYE RFC 3261 §13.3.1.4 asks for;
//   - the UAC CANCEL (WaitAnswer) waits for a provisional response and then
//     up to 64*T1 for the 487 with time.After and context.Background: UA
//     Close cannot stop it, and the caller stays blocked meanwhile;
//   - it builds Via, Contact and Route itself (Via sent-by from sipgo,
//     destination from the first Route even for a strict router, no
//     outbound proxy, no 1300-byte rule), while every other sipside
//     request gets ours (finish, resolveHop, D1);
//   - its timers are sipgo's package globals (sip.T1), which STYLE.md
//     leaves to main; tests need short ones per UA.
//
// So sipside keeps a small call table (dialog ID -> *Call) and drives
// sipgo's INVITE transactions itself. sipgo still does, per transaction:
// 100 Trying after 200 ms, absorbing retransmitted INVITEs, CANCEL matching
// (200 to the CANCEL, 487 to the INVITE, RFC 3261 §9.2), retransmitting a
// non-2xx final response and absorbing its ACK (Timers G, H, I), ACKing a
// non-2xx final response we receive, and passing up retransmitted 2xx
// responses (RFC 6026) so that we ACK them again.

// Call limits and timers.
const (
	// DefaultMaxCalls bounds the calls (INVITE dialogs, either direction,
	// being set up or established) of one UA (WithMaxCalls).
	DefaultMaxCalls = 10000

	// defaultCallT1 and defaultCallT2 are RFC 3261 T1 and T2 (§17.1.1.1)
	// for the 2xx retransmission of an incoming INVITE (§13.3.1.4), its
	// 64*T1 ACK wait, and the waits around a CANCEL (§9.1). sipgo's own
	// transaction timers (its package globals) are not touched.
	defaultCallT1 = 500 * time.Millisecond
	defaultCallT2 = 4 * time.Second

	sdpType = "application/sdp"
)

// ErrTooManyCalls is returned by Invite when WithMaxCalls calls exist.
// (It belongs with the others in errors.go; it lives here until that file
// is touched again.)
var ErrTooManyCalls = errors.New("sipside: too many calls")

// Call end reasons (Call.EndReason).
const (
	EndBye        = "bye"         // the peer sent BYE
	EndLocal      = "local"       // Call.Bye
	EndClosed     = "closed"      // UA.Close
	EndAckTimeout = "ack-timeout" // our 2xx was never acknowledged (never seen by Then)
	endFailed     = "failed"      // the 2xx could not be sent (never seen by Then)
)

// IncomingInvite is an initial INVITE (RFC 3261 §13.3; the gateway is the
// answerer, RFC 7573 §5) that passed the source (403), syntax (400), Contact
// (400), Require (420) and body (415, 488, 413) checks.
type IncomingInvite struct {
	// Dialog is our view of the dialog the 2xx will create: Local is the To
	// of the INVITE with a fresh LocalTag, Remote the caller, RemoteTarget
	// its Contact, RouteSet its Record-Route in order (RFC 3261 §12.1.1),
	// RemoteCSeq the INVITE's CSeq, LocalCSeq 0.
	Dialog      Dialog
	RequestURI  string
	From, To    string // URIs without tags
	FromDisplay string
	Subject     string
	ContentType string
	Body        []byte // the SDP offer
	Source      netip.AddrPort
	Transport   string // "udp", "tcp", "tls"
}

// InviteReply is the final response an InviteHandler chooses.
type InviteReply struct {
	// Code is 2xx to accept (RFC 7573 §5, CHAT-10), or a failure: 486,
	// 488 (no common media, CHAT-10c), 404, 415, 480, 603 ...
	Code   int
	Reason string // "" = standard phrase
	// ContentType and Body are the SDP answer of a 2xx (Content-Type ""
	// means application/sdp). A 2xx without a body is answered 500: the
	// INVITE carried an offer and the 2xx must carry the answer (RFC 3264
	// §5).
	ContentType string
	Body        []byte
	// Contact, for a 2xx, replaces our listener as the Contact (the remote
	// target of the caller's requests), e.g. a GRUU "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym"
	// that routes back to us (CHAT-10a). "" = our listener.
	Contact string
	// Headers are added to the response, e.g. Accept on 415/488,
	// Retry-After on 486. Via, From, To, Call-ID, CSeq, Content-*,
	// Route, Record-Route and Server are refused; Contact only on 3xx
	// and 485.
	Headers map[string]string
	// Then, if not nil, runs exactly once, after the answer:
	//   - with the Call, once a 2xx was acknowledged (RFC 3261 §13.3.1.4);
	//   - with nil when no call came of the reply: a failure reply, a
	//     CANCEL that won the race, a 2xx that could not be sent, a BYE
	//     from the peer before its ACK, UA Close, or no ACK within 64*T1
	//     (sipside then sends the BYE itself).
	// It runs on the INVITE's goroutine and must return promptly.
	Then func(call *Call)
}

// InviteHandler decides the final response to an incoming INVITE. ctx is
// cancelled when the caller CANCELs (sipside has then answered 487 already
// and ignores the reply, but still calls its Then with nil) and at UA Close.
// It may block until the answer is ready (sipgo sends 100 Trying meanwhile);
// it must return when ctx is done.
type InviteHandler func(ctx context.Context, inv *IncomingInvite) InviteReply

// OutgoingInvite is an INVITE to send (RFC 7573 §4: the gateway is the
// offerer; CHAT-01).
type OutgoingInvite struct {
	RequestURI, From, To string // URIs; From gets a fresh tag, To none
	FromDisplay          string
	ContentType          string // "" = application/sdp
	Body                 []byte // the SDP offer (required)
	// CallID is the Call-ID, "" for a fresh random one (CHAT-01d: the XMPP
	// thread when there is one).
	CallID  string
	Subject string // CHAT-01e, "" for none
	// Contact replaces our listener as the Contact, e.g. a GRUU
	// (CHAT-01c). "" = our listener for the transport used.
	Contact string
}

// InviteResult is the final response to an outgoing INVITE.
type InviteResult struct {
	Result             // Code, Reason of the final response
	ContentType string // of a 2xx
	Body        []byte // the SDP answer of a 2xx
}

// Call is one established INVITE dialog, either direction. Safe for
// concurrent use.
type Call struct {
	u          *UA
	key        string // dialog key in the call table
	id         string
	incoming   bool
	inviteCSeq uint32
	acked      chan struct{} // incoming: closed by the ACK of our 2xx
	ackOnce    sync.Once
	done       chan struct{}

	mu       sync.Mutex
	dialog   Dialog
	reason   string                // "" while the call lasts
	bye      *byeOp                // our BYE, once Bye was called
	inviteTx sip.ClientTransaction // outgoing: kept for 2xx retransmissions
	ack      *sip.Request          // outgoing: our ACK, sent again for each 2xx retransmission
}

type byeOp struct {
	done chan struct{}
	err  error
}

// WithInviteHandler sets the handler of incoming INVITEs. With one, Allow
// lists INVITE, ACK, BYE and CANCEL; without one, INVITE is answered 405.
// BYE and ACK of calls made with UA.Invite are served either way.
func WithInviteHandler(h InviteHandler) Option {
	return func(c *config) error {
		if h == nil {
			return optErr("invite handler is nil")
		}
		c.invite = h
		return nil
	}
}

// WithMaxCalls bounds the calls being set up or established, both
// directions together (default DefaultMaxCalls). Beyond it an incoming
// INVITE is answered 503 with Retry-After, and Invite returns
// ErrTooManyCalls.
func WithMaxCalls(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return optErr("max calls %d", n)
		}
		c.maxCalls = n
		return nil
	}
}

// ID returns the Call-ID and our tag: unique among the calls of a UA.
func (c *Call) ID() string { return c.id }

// Dialog returns the dialog state (LocalCSeq moves with our BYE).
func (c *Call) Dialog() Dialog {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dialog
	d.RouteSet = slices.Clone(d.RouteSet)
	return d
}

// Incoming reports whether the peer sent the INVITE.
func (c *Call) Incoming() bool { return c.incoming }

// Done is closed when the call has ended: BYE from the peer, Bye, or UA
// Close.
func (c *Call) Done() <-chan struct{} { return c.done }

// EndReason is "" while the call lasts, then EndBye, EndLocal or EndClosed.
func (c *Call) EndReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// Bye ends the call and sends BYE in the dialog (RFC 3261 §15.1.1): Done
// closes at once with EndLocal, and Bye waits for the BYE's final response.
// It returns nil for a 2xx, a *StatusError for another final response, or
// the errors of SendMessage. It is idempotent: later calls wait for the
// first one's outcome; on a call the peer or Close already ended it sends
// nothing and returns nil.
func (c *Call) Bye(ctx context.Context) error {
	c.mu.Lock()
	if op := c.bye; op != nil {
		c.mu.Unlock()
		select {
		case <-op.done:
			return op.err
		case <-ctx.Done():
			return c.u.ctxErr(ctx, "waiting for the BYE")
		}
	}
	if c.reason != "" {
		c.mu.Unlock()
		return nil
	}
	op := &byeOp{done: make(chan struct{})}
	c.bye = op
	tx := c.endLocked(EndLocal)
	c.mu.Unlock()
	c.afterEnd(tx)
	op.err = c.sendBye(ctx)
	close(op.done)
	return op.err
}

// end ends the call with reason unless it has ended already.
func (c *Call) end(reason string) bool {
	c.mu.Lock()
	if c.reason != "" {
		c.mu.Unlock()
		return false
	}
	tx := c.endLocked(reason)
	c.mu.Unlock()
	c.afterEnd(tx)
	return true
}

func (c *Call) endLocked(reason string) sip.ClientTransaction {
	c.reason = reason
	close(c.done)
	tx := c.inviteTx
	c.inviteTx = nil
	return tx
}

func (c *Call) afterEnd(tx sip.ClientTransaction) {
	c.u.calls.remove(c)
	if tx != nil {
		tx.Terminate()
	}
	c.u.log.Info("sip call ended", "call_id", c.dialog.CallID, "reason", c.EndReason())
}

// sendBye sends BYE in the dialog and waits for its final response.
func (c *Call) sendBye(ctx context.Context) error {
	u := c.u
	st := u.started()
	if st == nil || !u.enter() {
		return ErrClosed
	}
	defer u.leave()
	c.mu.Lock()
	c.dialog.LocalCSeq++
	d := c.dialog
	c.mu.Unlock()
	req, hop, err := u.buildCallRequest(&d, sip.BYE, d.LocalCSeq)
	if err != nil {
		return err
	}
	select {
	case u.slots <- struct{}{}:
	case <-ctx.Done():
		return u.ctxErr(ctx, "waiting for a transaction slot")
	case <-u.ctx.Done():
		return ErrClosed
	}
	defer func() { <-u.slots }()
	if err := u.finishCall(ctx, st, req, hop); err != nil {
		return err
	}
	req.RemoveHeader("Contact") // RFC 3261 Table 3: no Contact in BYE
	res, err := u.transact(ctx, req)
	if err != nil {
		return err
	}
	return res.Err()
}

// callTable holds the calls of a UA by dialog key, and counts the slots
// (WithMaxCalls) of calls being set up.
type callTable struct {
	max     int
	mu      sync.Mutex
	pending int // reserved, not (or no longer to be) in byKey
	byKey   map[string]*Call
	closed  bool
}

func newCallTable(max int) *callTable {
	return &callTable{max: max, byKey: make(map[string]*Call)}
}

// reserve takes a slot for a call being set up.
func (t *callTable) reserve() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.pending+len(t.byKey) >= t.max {
		return false
	}
	t.pending++
	return true
}

// unreserve gives back a slot that did not become a call.
func (t *callTable) unreserve() {
	t.mu.Lock()
	t.pending--
	t.mu.Unlock()
}

// add turns a reservation into a call; false (the slot is given back) once
// the UA is closing.
func (t *callTable) add(c *Call) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending--
	if t.closed {
		return false
	}
	t.byKey[c.key] = c
	return true
}

func (t *callTable) remove(c *Call) {
	t.mu.Lock()
	if t.byKey[c.key] == c {
		delete(t.byKey, c.key)
	}
	t.mu.Unlock()
}

func (t *callTable) get(key string) *Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[key]
}

// closeAll refuses new calls and ends every call with EndClosed (no BYE is
// sent: the listeners are going away).
func (t *callTable) closeAll() {
	t.mu.Lock()
	t.closed = true
	all := make([]*Call, 0, len(t.byKey))
	for _, c := range t.byKey {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.end(EndClosed)
	}
}

// dialogKey identifies a dialog from our side (RFC 3261 §12: Call-ID, local
// tag, remote tag).
func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}

// requestDialogKey is the dialog key of a request we receive: the To tag is
// ours.
func requestDialogKey(req *sip.Request) string {
	toTag, _ := req.To().Params.Get("tag")
	fromTag, _ := req.From().Params.Get("tag")
	return dialogKey(string(*req.CallID()), toTag, fromTag)
}

func newCall(u *UA, d Dialog, incoming bool, inviteCSeq uint32) *Call {
	return &Call{
		u:          u,
		key:        dialogKey(d.CallID, d.LocalTag, d.RemoteTag),
		id:         d.CallID + ";tag=" + d.LocalTag,
		incoming:   incoming,
		inviteCSeq: inviteCSeq,
		acked:      make(chan struct{}),
		done:       make(chan struct{}),
		dialog:     d,
	}
}

// mediaTypeIs reports whether the Content-Type value ct names want,
// ignoring case and parameters.
func mediaTypeIs(ct, want string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && strings.EqualFold(mt, want)
}

// handleInvite serves an incoming INVITE after the admission checks.
func (u *UA) handleInvite(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	from, to := req.From(), req.To()
	fromTag, _ := from.Params.Get("tag")
	toTag, _ := to.Params.Get("tag")
	if toTag != "" {
		// A re-INVITE (RFC 3261 §14.2). Sessions are not renegotiated: an
		// MSRP chat has nothing to change but its path, and a new path
		// needs a new session (CHAT-62). A request in a dialog we do not
		// know gets 481 (§12.2.2).
		if u.calls.get(requestDialogKey(req)) != nil {
			u.refuseWith(req, tx, src, 488, "", sip.NewHeader("Warning", `399 `+u.warnAgent()+` "re-INVITE not supported"`))
		} else {
			u.refuseWith(req, tx, src, 481, "")
		}
		return
	}
	if fromTag == "" {
		u.refuseWith(req, tx, src, 400, "Missing From Tag")
		return
	}
	contact := req.Contact()
	if contact == nil || contact.Address.Wildcard || (contact.Address.Scheme != "sip" && contact.Address.Scheme != "sips") || contact.Address.Host == "" {
		u.refuseWith(req, tx, src, 400, "Missing Contact") // RFC 3261 §8.1.1.8
		return
	}
	var ext []string
	for _, v := range headerValues(req, "require") {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				ext = append(ext, o)
			}
		}
	}
	if len(ext) > 0 {
		// RFC 3261 §8.2.2.3: we support no extension.
		u.refuseWith(req, tx, src, 420, "", sip.NewHeader("Unsupported", strings.Join(ext, ", ")))
		return
	}
	body := req.Body()
	ctype := ""
	if ct := req.ContentType(); ct != nil {
		ctype = string(*ct)
	}
	switch {
	case len(body) > 0 && !mediaTypeIs(ctype, sdpType):
		u.refuseWith(req, tx, src, 415, "", sip.NewHeader("Accept", sdpType))
		return
	case len(body) > 0 && !identityEncoding(headerValue(req, "content-encoding", "e")):
		u.refuseWith(req, tx, src, 415, "", sip.NewHeader("Accept-Encoding", "identity"))
		return
	case len(body) == 0:
		// We are the answerer (RFC 7573 §5): an INVITE without an offer
		// would make us the offerer in the 2xx, which sipside does not do.
		u.refuseWith(req, tx, src, 488, "", sip.NewHeader("Warning", `399 `+u.warnAgent()+` "an SDP offer is required"`))
		return
	case len(body) > u.cfg.maxBody:
		u.refuseWith(req, tx, src, 413, "")
		return
	}
	if !u.calls.reserve() {
		u.log.Warn("sip overload: INVITE answered 503", "max_calls", u.cfg.maxCalls, "source", src)
		u.refuseWith(req, tx, src, 503, "", sip.NewHeader("Retry-After", strconv.Itoa(OverloadRetryAfter)))
		return
	}
	reserved := true
	defer func() {
		if reserved {
			u.calls.unreserve()
		}
	}()

	inv := &IncomingInvite{
		Dialog: Dialog{
			CallID:       strings.Clone(string(*req.CallID())), // not a slice of the message
			LocalURI:     to.Address.String(),
			LocalTag:     token(),
			RemoteURI:    from.Address.String(),
			RemoteTag:    strings.Clone(fromTag),
			RemoteTarget: contact.Address.String(),
			RouteSet:     recordRoutes(req),
			RemoteCSeq:   req.CSeq().SeqNo,
		},
		RequestURI:  req.Recipient.String(),
		From:        from.Address.String(),
		To:          to.Address.String(),
		FromDisplay: unquoteDisplay(from.DisplayName),
		Subject:     headerValue(req, "subject", "s"),
		ContentType: ctype,
		Body:        body,
		Source:      src,
		Transport:   strings.ToLower(req.Transport()),
	}
	log := u.log.With("call_id", inv.Dialog.CallID)
	log.Info("sip call offered", "source", src, "transport", inv.Transport, "from", inv.From, "to", inv.To)

	// The handler's context ends with a CANCEL (sipgo has then answered
	// 200 to the CANCEL and 487 to the INVITE), a dead transaction, or
	// Close.
	ctx, cancel := context.WithCancel(u.ctx)
	defer cancel()
	var cancelled atomic.Bool
	if !tx.OnCancel(func(*sip.Request) { cancelled.Store(true); cancel() }) ||
		!tx.OnTerminate(func(string, error) { cancel() }) {
		log.Info("sip INVITE gone before the handler")
		return
	}
	reply := u.callInvite(ctx, inv)
	then := func(c *Call) {
		if reply.Then != nil {
			u.runThen(reply.Then, c, inv.Dialog.CallID)
		}
	}
	if cancelled.Load() || ctx.Err() != nil {
		// sipgo answered 487 already; responding now would overwrite
		// the response its Timer G retransmits.
		log.Info("sip call cancelled", "code", reply.Code)
		then(nil)
		return
	}
	code, reason := reply.Code, reply.Reason
	if code < 200 || code > 699 {
		log.Error("sip invite handler returned a bad status", "code", code)
		code, reason = 500, ""
	}
	if code < 300 && len(reply.Body) == 0 {
		log.Error("sip invite handler accepted without an SDP answer; answering 500")
		code, reason = 500, ""
	}
	var contactHdr *sip.ContactHeader
	if code < 300 {
		if reply.Contact != "" {
			cu, err := parseURI("Contact", reply.Contact)
			if err != nil {
				log.Error("sip invite reply contact refused", "error", err)
				code, reason = 500, ""
			} else {
				contactHdr = &sip.ContactHeader{Address: cu}
			}
		} else if st := u.started(); st != nil {
			contactHdr = u.contact(st, to.Address.User, req.Transport())
		}
		if contactHdr == nil {
			code, reason = 500, ""
		}
	}
	ct := reply.ContentType
	if ct == "" {
		ct = sdpType
	}
	if code < 300 && !isMediaType(ct) {
		log.Error("sip invite reply content type refused", "content_type", ct)
		code, reason = 500, ""
	}
	if reason == "" || hasCtl(reason) {
		reason = reasonPhrase(code)
	}
	var resBody []byte
	if code < 300 {
		resBody = reply.Body
	}
	res := sip.NewResponseFromRequest(req, code, reason, resBody)
	res.To().Params.Add("tag", inv.Dialog.LocalTag)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	if code < 300 {
		res.AppendHeader(contactHdr)
		res.AppendHeader(sip.NewHeader("Allow", u.allow)) // RFC 3261 §13.3.1.4 SHOULD
		ctHdr := sip.ContentTypeHeader(ct)
		res.AppendHeader(&ctHdr)
	}
	u.replyHeaders(res, code, reply.Headers)

	if code >= 300 {
		log.Info("sip call refused", "code", code)
		if err := tx.Respond(res); err != nil {
			log.Debug("sip respond failed", "code", code, "error", err)
		}
		then(nil)
		return
	}

	// The call exists from the 2xx on: its ACK and an early BYE must find
	// it.
	c := newCall(u, inv.Dialog, true, inv.Dialog.RemoteCSeq)
	reserved = false
	if !u.calls.add(c) {
		then(nil)
		return
	}
	if cancelled.Load() {
		c.end(endFailed)
		then(nil)
		return
	}
	if err := tx.Respond(res); err != nil {
		if errors.Is(err, sip.ErrUDPMTUCongestion) {
			// sipgo writes no datagram above 1300 bytes, responses
			// included: keep SDP answers small over UDP.
			log.Error("sip call failed: 2xx too large for udp", "size", len(res.String()))
		} else {
			log.Info("sip call failed: 2xx not sent", "error", err)
		}
		c.end(endFailed)
		then(nil)
		return
	}
	if u.awaitAck(c, tx, res) {
		log.Info("sip call established", "direction", "in")
		then(c)
		return
	}
	if c.end(EndAckTimeout) {
		// RFC 3261 §13.3.1.4: confirmed but never acknowledged: BYE.
		log.Info("sip call not acknowledged; sending BYE")
		if err := c.sendBye(u.ctx); err != nil {
			log.Info("sip BYE after ACK timeout failed", "error", err)
		}
	}
	then(nil)
}

// awaitAck retransmits the 2xx until its ACK arrives (RFC 3261
// §13.3.1.4: from T1, doubling up to T2, for 64*T1). It reports whether the
// ACK came while the call still lasted. sipgo does not retransmit a 2xx
// itself (RFC 6026 "Accepted" state); its Respond in that state passes the
// response to the transport. Over TCP too: the 2xx is retransmitted end to
// end, for proxies that forward it over UDP.
func (u *UA) awaitAck(c *Call, tx sip.ServerTransaction, res *sip.Response) bool {
	t1, t2 := u.cfg.callT1, u.cfg.callT2
	interval := t1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	giveUp := time.NewTimer(64 * t1)
	defer giveUp.Stop()
	for {
		select {
		case <-c.acked:
			return c.EndReason() == ""
		case <-tx.Acks():
			// An ACK that reused the INVITE's branch reached the
			// transaction (RFC 3261 wants a new one); take it too.
			return c.EndReason() == ""
		case <-c.done:
			return false
		case <-u.ctx.Done():
			return false
		case <-retransmit.C:
			if err := tx.Respond(res); err != nil {
				// The transaction is gone (Timer L, a closed connection):
				// keep waiting for an ACK on another connection.
				u.log.Debug("sip 2xx retransmission failed", "call_id", c.dialog.CallID, "error", err)
				continue
			}
			interval = min(2*interval, t2)
			retransmit.Reset(interval)
		case <-giveUp.C:
			return false
		}
	}
}

// handleAck takes the ACK of our 2xx to an INVITE (a new transaction,
// RFC 3261 §13.3.1.4). ACKs are never answered; one for no known call is
// dropped.
func (u *UA) handleAck(req *sip.Request, tx sip.ServerTransaction) {
	if !u.enter() {
		return
	}
	defer u.leave()
	src, code, reason := u.admit(req)
	if code != 0 {
		u.refuse(req, tx, src, code, reason) // logs, never answers an ACK
		return
	}
	c := u.calls.get(requestDialogKey(req))
	if c == nil || !c.incoming || req.CSeq().SeqNo != c.inviteCSeq {
		u.log.Debug("sip ACK without a call", "source", src, "call_id", string(*req.CallID()))
		return
	}
	c.ackOnce.Do(func() { close(c.acked) })
}

// handleBye ends a call at the peer's request (RFC 3261 §15.1.2).
func (u *UA) handleBye(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	c := u.calls.get(requestDialogKey(req))
	if c == nil {
		if u.cfg.invite == nil {
			// No INVITE service and no call of ours: as before, BYE is a
			// method we do not serve.
			u.refuse(req, tx, src, 405, reasonPhrase(405))
			return
		}
		u.refuseWith(req, tx, src, 481, "")
		return
	}
	cseq := req.CSeq().SeqNo
	c.mu.Lock()
	outOfOrder := c.dialog.RemoteCSeq != 0 && cseq < c.dialog.RemoteCSeq
	if !outOfOrder {
		c.dialog.RemoteCSeq = cseq
	}
	c.mu.Unlock()
	if outOfOrder {
		u.refuseWith(req, tx, src, 500, "CSeq Out Of Order") // RFC 3261 §12.2.2
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sip respond failed", "code", 200, "error", err)
	}
	c.end(EndBye)
}

// callInvite runs the handler, turning a panic into a 500.
func (u *UA) callInvite(ctx context.Context, inv *IncomingInvite) (r InviteReply) {
	defer func() {
		if p := recover(); p != nil {
			u.log.Error("sip invite handler panicked", "panic", p, "source", inv.Source, "call_id", inv.Dialog.CallID)
			r = InviteReply{Code: 500}
		}
	}()
	return u.cfg.invite(ctx, inv)
}

func (u *UA) runThen(f func(*Call), c *Call, callID string) {
	defer func() {
		if p := recover(); p != nil {
			u.log.Error("sip invite reply Then panicked", "panic", p, "call_id", callID)
		}
	}()
	f(c)
}

// replyHeaders adds a handler's extra headers to res, refusing those sipgo
// or sipside set and unsafe values.
func (u *UA) replyHeaders(res *sip.Response, code int, hs map[string]string) {
	names := make([]string, 0, len(hs))
	for k := range hs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v := hs[k]
		lk := strings.ToLower(k)
		ok := isToken(k) && !hasCtl(v) && !slices.Contains(reservedReplyHeaders, lk) && lk != "allow"
		if lk == "contact" || lk == "m" {
			ok = ok && (code >= 300 && code < 400 || code == 485)
		}
		if !ok {
			u.log.Error("sip reply header refused", "header", k)
			continue
		}
		res.AppendHeader(sip.NewHeader(k, cleanText(v)))
	}
}

// warnAgent is the warn-agent of our Warning headers (RFC 3261 §20.43).
func (u *UA) warnAgent() string {
	if u.cfg.domain != "" {
		return u.cfg.domain
	}
	return "stox"
}

// identityEncoding reports a Content-Encoding we can read: none or
// identity (RFC 3261 §8.2.3).
func identityEncoding(v string) bool {
	v = strings.TrimSpace(v)
	return v == "" || strings.EqualFold(v, "identity")
}

// Invite sends the INVITE (through the outbound proxy like SendMessage),
// waits for the final response, ACKs a 2xx (RFC 3261 §13.2.2.4) and
// returns the established Call. Provisional responses are skipped. A
// non-2xx final response gives a nil Call, the result (res.Err() non-nil)
// and a nil error; sipgo ACKs it.
//
// When ctx ends first, Invite returns at once with ctx's error (ErrTimeout
// for a deadline) and cancels in the background (RFC 3261 §9.1): it waits
// for a provisional response (CANCEL may not precede one), sends CANCEL,
// and waits for the final response; a 2xx that wins the race is ACKed and
// ended with BYE. The INVITE transaction times out after Timer B (64*T1)
// without any response; once the peer has answered provisionally, only ctx
// bounds the wait.
//
// Errors, wrapped with %w: ErrHeaderValue (a value that cannot go into a
// header, or no Body), ErrTooManyCalls (WithMaxCalls), ErrTimeout,
// ErrTransport, ErrNotStarted, ErrClosed; ctx's error when ctx is
// cancelled. An INVITE larger than 1300 bytes goes over TCP to the same
// next hop instead of UDP (D1).
//
// Known gap: a second 2xx from another fork (another To tag) is neither
// ACKed nor ended; only the first dialog is kept.
func (u *UA) Invite(ctx context.Context, inv *OutgoingInvite) (*Call, InviteResult, error) {
	if inv == nil {
		return nil, InviteResult{}, fmt.Errorf("%w: nil invite", ErrHeaderValue)
	}
	u.mu.Lock()
	st, closed := u.state, u.closed
	if !closed && st != nil {
		u.wg.Add(1)
	}
	u.mu.Unlock()
	switch {
	case closed:
		return nil, InviteResult{}, ErrClosed
	case st == nil:
		return nil, InviteResult{}, ErrNotStarted
	}
	defer u.leave()

	if len(inv.Body) == 0 {
		return nil, InviteResult{}, fmt.Errorf("%w: an INVITE needs an SDP offer (Body)", ErrHeaderValue)
	}
	ctype := inv.ContentType
	if ctype == "" {
		ctype = sdpType
	}
	p, err := prepare(&OutgoingMessage{
		RequestURI: inv.RequestURI, From: inv.From, To: inv.To, FromDisplay: inv.FromDisplay,
		CallID: inv.CallID, Subject: inv.Subject, ContentType: ctype, Body: inv.Body,
	})
	if err != nil {
		return nil, InviteResult{}, err
	}
	var contact *sip.Uri
	if inv.Contact != "" {
		cu, err := parseURI("Contact", inv.Contact)
		if err != nil {
			return nil, InviteResult{}, err
		}
		contact = &cu
	}
	if !u.calls.reserve() {
		return nil, InviteResult{}, fmt.Errorf("%w: %d calls", ErrTooManyCalls, u.cfg.maxCalls)
	}
	reserved := true
	defer func() {
		if reserved {
			u.calls.unreserve()
		}
	}()

	tg, err := u.resolveTarget(ctx, &p.ruri)
	if err != nil {
		return nil, InviteResult{}, err
	}
	req := u.buildInvite(p)
	u.finishInvite(st, req, tg, contact)
	if tg.transport == "UDP" && requestSize(req)+sentByMargin(st, tg) > udpSizeLimit {
		tg.transport = "TCP" // D1: same next hop, over TCP
		u.finishInvite(st, req, tg, contact)
	}
	if u.log.Enabled(ctx, slog.LevelDebug) {
		u.log.Debug("sip request", "data", req.String())
	}
	// The context bounds dialing only (sipgo keeps no reference to it).
	dialCtx, cancelDial := context.WithTimeout(ctx, u.cfg.txTimeout)
	stop := context.AfterFunc(u.ctx, cancelDial)
	tx, err := u.cli.TransactionRequest(dialCtx, req, noBuild)
	stop()
	cancelDial()
	if err != nil {
		switch {
		case errors.Is(err, sip.ErrUDPMTUCongestion):
			return nil, InviteResult{}, fmt.Errorf("%w: %w", ErrTooLarge, err)
		case u.ctx.Err() != nil:
			return nil, InviteResult{}, ErrClosed
		case ctx.Err() != nil:
			return nil, InviteResult{}, u.ctxErr(ctx, "connecting")
		}
		return nil, InviteResult{}, fmt.Errorf("%w: %s %s: %w", ErrTransport, strings.ToLower(req.Transport()), req.Destination(), err)
	}
	provisional := false
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				provisional = true
				continue
			}
			out := InviteResult{Result: resultOf(res)}
			if !res.IsSuccess() {
				// sipgo ACKs it and absorbs retransmissions (Timer D).
				return nil, out, nil
			}
			if ct := res.ContentType(); ct != nil {
				out.ContentType = string(*ct)
			}
			out.Body = res.Body()
			c, err := u.confirm(st, p, req, tx, res)
			if err != nil {
				return nil, out, err
			}
			reserved = false // the call holds the slot now
			if !u.calls.add(c) {
				c.end(EndClosed)
				return nil, out, ErrClosed
			}
			if err := u.sendAck(c); err != nil {
				// The peer retransmits its 2xx; the hook ACKs again.
				u.log.Info("sip ACK failed", "call_id", p.callID, "error", err)
			}
			u.log.Info("sip call established", "call_id", p.callID, "direction", "out")
			return c, out, nil
		case <-tx.Done():
			err := tx.Err()
			switch {
			case u.ctx.Err() != nil:
				return nil, InviteResult{}, ErrClosed
			case errors.Is(err, sip.ErrTransactionTimeout):
				return nil, InviteResult{}, fmt.Errorf("%w: %w", ErrTimeout, err)
			}
			return nil, InviteResult{}, fmt.Errorf("%w: %w", ErrTransport, err)
		case <-ctx.Done():
			reserved = false // the background cancel gives the slot back
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer u.calls.unreserve()
				u.cancelInvite(st, p, req, tx, provisional)
			}()
			return nil, InviteResult{}, u.ctxErr(ctx, "waiting for an answer")
		case <-u.ctx.Done():
			tx.Terminate()
			return nil, InviteResult{}, ErrClosed
		}
	}
}

// buildInvite makes an initial INVITE with every header but Via and
// Contact (finishInvite).
func (u *UA) buildInvite(p *prepared) *sip.Request {
	req := sip.NewRequest(sip.INVITE, p.ruri)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	if u.route != nil {
		req.AppendHeader(&sip.RouteHeader{Address: *u.route})
	}
	from := &sip.FromHeader{DisplayName: p.display, Address: p.from, Params: sip.NewParams()}
	from.Params.Add("tag", p.tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: p.to})
	callID := sip.CallIDHeader(p.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(sip.NewHeader("User-Agent", u.uaString))
	req.AppendHeader(sip.NewHeader("Allow", u.allow))
	if p.subject != "" {
		req.AppendHeader(sip.NewHeader("Subject", p.subject))
	}
	ctype := sip.ContentTypeHeader(p.ctype)
	req.AppendHeader(&ctype)
	req.SetBody(p.body)
	return req
}

// finishInvite is finish with the caller's Contact when given.
func (u *UA) finishInvite(st *startedState, req *sip.Request, tg target, contact *sip.Uri) {
	u.finish(st, req, tg)
	if contact != nil {
		req.RemoveHeader("Contact")
		req.AppendHeader(&sip.ContactHeader{Address: *contact})
	}
}

// confirm makes the Call of a 2xx to our INVITE (RFC 3261 §12.1.2): the
// remote tag and target from the response, the route set its
// Record-Route reversed. The INVITE transaction is kept so that
// retransmissions of the 2xx get our ACK again.
func (u *UA) confirm(st *startedState, p *prepared, inv *sip.Request, tx sip.ClientTransaction, res *sip.Response) (*Call, error) {
	d := Dialog{
		CallID:    p.callID,
		LocalURI:  p.from.String(),
		LocalTag:  p.tag,
		RemoteURI: p.to.String(),
		LocalCSeq: inv.CSeq().SeqNo,
	}
	tag, _ := res.To().Params.Get("tag")
	d.RemoteTag = strings.Clone(tag) // not a slice of the response
	if c := res.Contact(); c != nil && !c.Address.Wildcard {
		d.RemoteTarget = c.Address.String()
	} else {
		u.log.Info("sip 2xx without Contact; using the Request-URI", "call_id", p.callID)
		d.RemoteTarget = p.ruri.String()
	}
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
			d.RouteSet = append(d.RouteSet, h.Address.String())
		}
	}
	c := newCall(u, d, false, d.LocalCSeq)
	ack, err := u.buildAck(st, c)
	if err != nil {
		tx.Terminate()
		return nil, err
	}
	c.inviteTx = tx
	remoteTag := d.RemoteTag
	tx.OnRetransmission(func(r *sip.Response) {
		if tag, _ := r.To().Params.Get("tag"); !r.IsSuccess() || tag != remoteTag {
			return
		}
		if err := u.cli.WriteRequest(ack.Clone(), noBuild); err != nil {
			u.log.Debug("sip ACK retransmission failed", "call_id", p.callID, "error", err)
		}
	})
	c.ack = ack
	return c, nil
}

// buildAck makes the ACK of a 2xx (RFC 3261 §13.2.2.4): in the dialog,
// CSeq number of the INVITE, a new branch, along the route set.
func (u *UA) buildAck(st *startedState, c *Call) (*sip.Request, error) {
	d := c.dialog
	req, hop, err := u.buildCallRequest(&d, sip.ACK, c.inviteCSeq)
	if err != nil {
		return nil, err
	}
	// Resolving an IP or a name with a port waits for nothing; a bare name
	// may query SRV, bounded by the transaction timeout and Close.
	ctx, cancel := context.WithTimeout(u.ctx, u.cfg.txTimeout)
	defer cancel()
	if err := u.finishCall(ctx, st, req, hop); err != nil {
		return nil, err
	}
	req.RemoveHeader("Contact")
	return req, nil
}

// sendAck writes the call's ACK (no transaction, RFC 3261 §17.1.1.3).
func (u *UA) sendAck(c *Call) error {
	if u.log.Enabled(context.Background(), slog.LevelDebug) {
		u.log.Debug("sip request", "data", c.ack.String())
	}
	return u.cli.WriteRequest(c.ack.Clone(), noBuild)
}

// finishCall resolves the next hop of an in-dialog request and sets its
// transport-dependent parts; over UDP a request above 1300 bytes goes over
// TCP instead (D1).
func (u *UA) finishCall(ctx context.Context, st *startedState, req *sip.Request, hop *sip.Uri) error {
	tg, err := u.resolveHop(ctx, hop)
	if err != nil {
		return err
	}
	u.finish(st, req, tg)
	if tg.transport == "UDP" && requestSize(req)+sentByMargin(st, tg) > udpSizeLimit {
		tg.transport = "TCP"
		u.finish(st, req, tg)
	}
	return nil
}

// buildCallRequest makes a request in an INVITE dialog (BYE, ACK) with
// every header but Via and Contact: Request-URI the remote target, Route
// the route set, next hop the first route (loose routing) or, for a strict
// router, the route itself with the remote target as last Route (RFC 3261
// §12.2.1.1; see dialogRequest).
func (u *UA) buildCallRequest(d *Dialog, method sip.RequestMethod, cseq uint32) (*sip.Request, *sip.Uri, error) {
	req, hop, err := u.dialogRequest(d, method, cseq)
	if err != nil {
		return nil, nil, err
	}
	req.SetBody(nil)
	return req, hop, nil
}

// cancelInvite cancels an INVITE whose caller gave up (RFC 3261 §9.1) and
// makes sure no call is left behind.
func (u *UA) cancelInvite(st *startedState, p *prepared, inv *sip.Request, tx sip.ClientTransaction, provisional bool) {
	t1 := u.cfg.callT1
	wait := time.NewTimer(64 * t1)
	defer wait.Stop()
	log := u.log.With("call_id", p.callID)
	// handle takes a final response: true when nothing is left to do.
	handle := func(res *sip.Response) bool {
		if res.IsProvisional() {
			return false
		}
		if res.IsSuccess() {
			// The 2xx won the race: ACK it and end the session with BYE.
			c, err := u.confirm(st, p, inv, tx, res)
			if err != nil {
				log.Info("sip 2xx after CANCEL could not be confirmed", "error", err)
				return true
			}
			if err := u.sendAck(c); err != nil {
				log.Info("sip ACK failed", "error", err)
			}
			if err := c.Bye(u.ctx); err != nil {
				log.Info("sip BYE after CANCEL failed", "error", err)
			}
		}
		return true // sipgo ACKs a non-2xx
	}
	for !provisional {
		select {
		case res := <-tx.Responses():
			if handle(res) {
				return
			}
			provisional = true
		case <-tx.Done():
			return
		case <-wait.C:
			tx.Terminate()
			return
		case <-u.ctx.Done():
			tx.Terminate()
			return
		}
	}
	cancel := newCancel(inv, u.uaString)
	// The 487 may arrive while we wait for the CANCEL's answer; sipgo holds
	// it for us (its passing up blocks until read).
	res, err := u.transact(u.ctx, cancel)
	if err != nil {
		log.Info("sip CANCEL failed", "error", err)
	} else {
		log.Info("sip call cancelled", "cancel_code", res.Code)
	}
	wait.Reset(64 * t1)
	for {
		select {
		case res := <-tx.Responses():
			if handle(res) {
				return
			}
		case <-tx.Done():
			return
		case <-wait.C:
			tx.Terminate()
			return
		case <-u.ctx.Done():
			tx.Terminate()
			return
		}
	}
}

// newCancel builds the CANCEL of inv (RFC 3261 §9.1): same Request-URI,
// Call-ID, From, To, CSeq number and Route, one Via equal to the INVITE's
// top Via, to the same destination over the same transport.
func newCancel(inv *sip.Request, ua string) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, inv.Recipient)
	c.AppendHeader(sip.HeaderClone(inv.Via()))
	maxFwd := sip.MaxForwardsHeader(70)
	c.AppendHeader(&maxFwd)
	sip.CopyHeaders("Route", inv, c)
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	c.AppendHeader(sip.NewHeader("User-Agent", ua))
	c.SetBody(nil)
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	inv.Laddr.Copy(&c.Laddr)
	return c
}
