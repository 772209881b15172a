package sipside

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// IncomingMessage is a received MESSAGE that passed the source (403) and
// syntax (400) checks. The handler owns it and its Body.
type IncomingMessage struct {
	RequestURI  string // e.g. "sip:alice@example.com;gr=phone" (params kept)
	From, To    string // URIs only (no display name, no tag), params kept
	FromDisplay string // unquoted
	CallID      string
	Subject     string
	ContentType string
	// ContentLanguage is the Content-Language value as received (IM-09).
	ContentLanguage string
	Body            []byte
	Source          netip.AddrPort
	Transport       string // "udp", "tcp", "tls"
	// TransactionID is the top Via branch, an identifier of the transaction
	// (IM-07 maps it to the stanza id).
	TransactionID string
	// TooLarge is set when the body is larger than WithMaxMessageBody; Body
	// is then nil and BodySize tells the size. The handler answers 413 after
	// its own 404/415 decisions (DESIGN.md order of refusals: 403, 400,
	// 404, 415, 413). A 2xx answer to such a message is turned into 413.
	TooLarge bool
	BodySize int
}

// Reply is the final response a MessageHandler chooses.
type Reply struct {
	Code    int
	Reason  string            // "" = standard phrase
	Headers map[string]string // e.g. {"Accept": "text/plain, message/cpim, text/html"}, {"Retry-After": "5"}
}

// MessageHandler decides the final response for an incoming MESSAGE that
// passed the source (403) and syntax (400) checks. Calls for MESSAGEs of one
// conversation (sender AOR, Request-URI user@host) are made one at a time,
// in arrival order. It may block briefly (it enqueues work); it must return
// when ctx is done (Close).
type MessageHandler func(ctx context.Context, m *IncomingMessage) Reply

// headers a Reply may not set: sipgo builds them from the request, or RFC
// 3428 §7 forbids them in a MESSAGE response (Contact in 2xx, body).
var reservedReplyHeaders = []string{
	"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq",
	"content-length", "l", "content-type", "c", "max-forwards",
	"route", "record-route", "server",
}

// admit runs the checks every request passes, in DESIGN.md order: the
// source (403), then the syntax (400, 416, 483, 505).
func (u *UA) admit(req *sip.Request) (netip.AddrPort, int, string) {
	src, _ := netip.ParseAddrPort(req.Source())
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if !u.trusted(src.Addr()) {
		return src, 403, "Forbidden"
	}
	code, reason := checkRequest(req)
	return src, code, reason
}

// onTransportMessage runs on the transport read loop for every message, in
// arrival order. It gives MESSAGEs that will reach the handler a turn in
// their conversation (see sequencer).
func (u *UA) onTransportMessage(msg sip.Message) {
	req, ok := msg.(*sip.Request)
	if !ok || !u.ordered(req.Method) {
		return
	}
	if _, code, _ := u.admit(req); code != 0 {
		return // refused before the handler: no turn needed
	}
	token, err := sip.ServerTxKeyMake(req)
	if err != nil {
		return // sipgo refuses it too
	}
	u.seq.issue(token, orderKey(req), req.Transport() == "UDP")
}

// admitted wraps a request handler with what every handled request passes
// first: the UA is running, the source is trusted (403) and the request is
// well formed (400). Refusals are answered and logged here.
func (u *UA) admitted(h func(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if !u.enter() {
			return
		}
		defer u.leave()
		src, code, reason := u.admit(req)
		if code != 0 {
			u.refuse(req, tx, src, code, reason)
			return
		}
		h(req, tx, src)
	}
}

func (u *UA) handleMessage(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	if n := u.incomingBusy.Add(1); n > int64(u.cfg.maxIncoming) {
		u.incomingBusy.Add(-1)
		u.shed(req, tx, src)
		return
	}
	defer u.incomingBusy.Add(-1)
	u.usualIn.Add(1)
	u.workers.do(func() {
		m := u.incoming(req, src)
		token, _ := sip.ServerTxKeyMake(req)
		reply := u.dispatch(u.ctx, token, orderKey(req), m)
		u.respond(req, tx, m, reply)
	})
}

// overloaded reports whether incoming MESSAGEs are at WithMaxIncoming:
// those being handled, or those read and waiting for their turn or for
// their goroutine to run.
func (u *UA) overloaded() bool {
	limit := int64(u.cfg.maxIncoming)
	return u.cfg.handler != nil && (u.incomingBusy.Load() >= limit || u.seq.pending() >= limit)
}

// noteShed counts a MESSAGE answered 503 for overload and warns at most
// once a second.
func (u *UA) noteShed(src netip.AddrPort) {
	n := u.shedCount.Add(1)
	now := time.Now().UnixNano()
	if last := u.shedLogged.Load(); now-last >= int64(time.Second) && u.shedLogged.CompareAndSwap(last, now) {
		u.log.Warn("sip overload: MESSAGEs answered 503", "max_incoming", u.cfg.maxIncoming, "total", n, "source", src)
	}
}

// shed answers a MESSAGE beyond WithMaxIncoming: 503 with Retry-After, at
// once, and gives up its turn in its conversation.
func (u *UA) shed(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	if token, err := sip.ServerTxKeyMake(req); err == nil {
		u.seq.discard(token, orderKey(req))
	}
	u.noteShed(src)
	res := sip.NewResponseFromRequest(req, 503, reasonPhrase(503), nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(OverloadRetryAfter)))
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sip respond failed", "code", 503, "error", err)
	}
}

// dispatch waits for the turn of the request's transaction token (""
// for none) in the conversation key and calls the handler.
func (u *UA) dispatch(ctx context.Context, token, key string, m *IncomingMessage) (reply Reply) {
	var t *ticket
	if token != "" {
		t = u.seq.claim(u.ctx, token, key)
	}
	defer u.seq.release(t)
	defer func() {
		if r := recover(); r != nil {
			u.log.Error("sip message handler panicked", "panic", r, "source", m.Source, "call_id", m.CallID)
			reply = Reply{Code: 500}
		}
	}()
	return u.cfg.handler(ctx, m)
}

type readLoopKey struct{}

// OnReadLoop reports whether a MessageHandler was called with ctx on the
// UDP read loop (WithInlineHandler): then it must not block.
func OnReadLoop(ctx context.Context) bool {
	v, _ := ctx.Value(readLoopKey{}).(bool)
	return v
}

func (u *UA) incoming(req *sip.Request, src netip.AddrPort) *IncomingMessage {
	from, to := req.From(), req.To()
	m := &IncomingMessage{
		RequestURI:      req.Recipient.String(),
		From:            from.Address.String(),
		To:              to.Address.String(),
		FromDisplay:     unquoteDisplay(from.DisplayName),
		CallID:          string(*req.CallID()),
		Subject:         headerValue(req, "subject", "s"),
		ContentLanguage: headerValue(req, "content-language"),
		Source:          src,
		Transport:       strings.ToLower(req.Transport()),
		TransactionID:   viaBranch(req),
	}
	if ct := req.ContentType(); ct != nil {
		m.ContentType = string(*ct)
	}
	body := req.Body()
	m.BodySize = len(body)
	if len(body) > u.cfg.maxBody {
		m.TooLarge = true
	} else {
		m.Body = body
	}
	return m
}

// respond sends the handler's reply.
func (u *UA) respond(req *sip.Request, tx sip.ServerTransaction, m *IncomingMessage, r Reply) {
	code, reason, extra := u.finalReply(m, r)
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	for _, h := range extra {
		res.AppendHeader(sip.NewHeader(h[0], h[1]))
	}
	u.log.Debug("sip message answered", "source", m.Source, "call_id", m.CallID, "code", code)
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sip respond failed", "code", code, "error", err)
	}
}

// finalReply checks the handler's reply: the status code, the reason phrase
// and the headers it may add (sorted by name, values cleaned). What it
// refuses is logged.
func (u *UA) finalReply(m *IncomingMessage, r Reply) (int, string, [][2]string) {
	code, reason := r.Code, r.Reason
	if code < 200 || code > 699 {
		u.log.Error("sip message handler returned a bad status", "code", code)
		code, reason = 500, ""
	}
	if m.TooLarge && code < 300 {
		u.log.Error("sip message handler accepted an oversize body; answering 413", "size", m.BodySize, "limit", u.cfg.maxBody)
		code, reason = 413, ""
		r.Headers = nil
	}
	if reason == "" || hasCtl(reason) {
		reason = reasonPhrase(code)
	}
	if len(r.Headers) == 0 {
		return code, reason, nil
	}
	names := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	extra := make([][2]string, 0, len(names))
	for _, k := range names {
		v := r.Headers[k]
		lk := strings.ToLower(k)
		ok := isToken(k) && !hasCtl(v) && !slices.Contains(reservedReplyHeaders, lk)
		if lk == "contact" || lk == "m" {
			// IM-04: no Contact in a 2xx to MESSAGE; 3xx and 485 need it.
			ok = ok && code >= 300
		}
		if !ok {
			u.log.Error("sip reply header refused", "header", k)
			continue
		}
		extra = append(extra, [2]string{k, cleanText(v)})
	}
	return code, reason, extra
}

// refuse answers a request refused before any handler, and logs it.
func (u *UA) refuse(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, code int, reason string) {
	if req.IsAck() {
		u.log.Info("sip request refused", "source", src, "method", "ACK", "code", code, "reason", reason)
		return // never answer an ACK
	}
	var extra []sip.Header
	if code == 405 {
		extra = append(extra, sip.NewHeader("Allow", u.allow))
	}
	u.refuseWith(req, tx, src, code, reason, extra...)
}

// handleOptions answers OPTIONS with our capabilities (RFC 3261 §11.2).
func (u *UA) handleOptions(req *sip.Request, tx sip.ServerTransaction, _ netip.AddrPort) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	res.AppendHeader(sip.NewHeader("Allow", u.allow))
	res.AppendHeader(sip.NewHeader("Accept", u.accept))
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sip respond failed", "code", 200, "error", err)
	}
}

// knownMethods are methods of RFC 3261 and its extensions: we answer them
// 405 with Allow; anything else is 501 (RFC 3261 §8.2.1).
var knownMethods = []sip.RequestMethod{
	sip.INVITE, sip.ACK, sip.BYE, sip.CANCEL, sip.REGISTER, sip.OPTIONS,
	sip.SUBSCRIBE, sip.NOTIFY, sip.REFER, sip.INFO, sip.MESSAGE, sip.PRACK,
	sip.UPDATE, sip.PUBLISH,
}

// handleOther answers every method without a handler.
func (u *UA) handleOther(req *sip.Request, tx sip.ServerTransaction) {
	if !u.enter() {
		return
	}
	defer u.leave()
	if req.IsAck() {
		return
	}
	src, code, reason := u.admit(req)
	switch {
	case code != 0:
	case req.IsCancel():
		code, reason = 481, reasonPhrase(481)
	case slices.Contains(knownMethods, req.Method):
		code, reason = 405, reasonPhrase(405)
	default:
		code, reason = 501, reasonPhrase(501)
	}
	u.refuse(req, tx, src, code, reason)
}
