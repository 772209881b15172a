package sipside

import (
	"context"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// SIP event subscriptions (RFC 6665), the transaction and header work of
// both roles. The subscription state machines are the caller's: sipside
// keeps no dialog state (see Dialog).

// Subscription defaults (RFC 3856 §6.4: 3600 s is the default duration of a
// presence subscription).
const (
	DefaultMinExpires = 60
	DefaultMaxExpires = 3600
)

// eventTypes are the body types each supported event package needs in a
// SUBSCRIBE's Accept, when it has one (RFC 6665 §4.1.2.1; RFC 3856 §6.5).
var eventTypes = map[string]string{
	"presence": "application/pidf+xml",
}

// IncomingSubscribe is a SUBSCRIBE that passed the checks of RFC 6665
// §4.2.1 (Event, Accept, Expires).
type IncomingSubscribe struct {
	// Dialog is our view of the subscription's dialog: Local is the
	// notifier (the To of the SUBSCRIBE; LocalTag is a fresh tag for an
	// initial SUBSCRIBE), Remote the subscriber, RemoteTarget its Contact,
	// RouteSet its Record-Route (RFC 3261 §12.1.1), RemoteCSeq the
	// request's CSeq, LocalCSeq 0. A refresh carries the values of this
	// request: the caller keeps its own LocalCSeq.
	Dialog Dialog
	// Initial is true without a To tag (a new subscription).
	Initial bool
	// Package is the event package, lower-case ("presence").
	Package string
	// Requested is the Expires asked for, -1 when absent; Expires is what
	// will be granted unless the handler lowers it: min(requested, max),
	// DefaultMaxExpires when absent, 0 for an unsubscribe or a fetch.
	Requested int
	Expires   int
	// RequestURI is the request's Request-URI (the presentity).
	RequestURI string
	Source     netip.AddrPort
	Transport  string // "udp", "tcp", "tls"
}

// SubscribeReply is what a SubscribeHandler answers.
type SubscribeReply struct {
	Code   int
	Reason string // "" = standard phrase
	// Expires, for a 2xx, lowers the granted duration (0 keeps
	// IncomingSubscribe.Expires).
	Expires int
	// Then, if not nil, runs once the response has been handed to the
	// transport: the place to send the first NOTIFY (RFC 6665 §4.2.1).
	Then func()
}

// SubscribeHandler decides the final response to a SUBSCRIBE. A 2xx is
// sent as 200 (never 202, RFC 6665 §8.3.1) with the dialog's local tag,
// our Contact and Expires. Calls for one subscriber and presentity come one
// at a time in arrival order. It must return promptly.
type SubscribeHandler func(ctx context.Context, s *IncomingSubscribe) SubscribeReply

// IncomingNotify is a NOTIFY that passed the checks of RFC 6665 §4.1.3.
type IncomingNotify struct {
	CallID string
	// LocalTag is the To tag (ours, the From tag of our SUBSCRIBE);
	// RemoteTag the notifier's From tag.
	LocalTag, RemoteTag string
	From, To            string // URIs without tags
	RequestURI          string
	Package             string // lower-case event package
	// Event is the Event header value as received (with an id parameter).
	Event string
	// SubscriptionState is the Subscription-State value as received.
	SubscriptionState string
	// Contact is the notifier's Contact URI: the dialog's remote target
	// (RFC 6665 §4.1.3 lets a NOTIFY update it).
	Contact string
	// RouteSet is the Record-Route of the NOTIFY, in order: the route set
	// when this NOTIFY creates the dialog before the 2xx arrived (RFC 6665
	// §4.1.2.4).
	RouteSet        []string
	CSeq            uint32
	ContentType     string
	ContentLanguage string
	Body            []byte
	// TooLarge is set when the body is over WithMaxMessageBody (Body nil).
	TooLarge bool
	BodySize int
	Source   netip.AddrPort
}

// NotifyHandler decides the final response to a NOTIFY: 200, or 481 for a
// dialog it does not know (RFC 6665 §4.1.3), 500 for a CSeq out of order
// (RFC 3261 §12.2.2). Calls for one dialog come one at a time in arrival
// order. It must return promptly.
type NotifyHandler func(ctx context.Context, n *IncomingNotify) Reply

// WithSubscribeHandler sets the handler of incoming SUBSCRIBE requests for
// the presence event package. Without one, SUBSCRIBE is answered 405.
func WithSubscribeHandler(h SubscribeHandler) Option {
	return func(c *config) error {
		if h == nil {
			return optErr("subscribe handler is nil")
		}
		c.subscribe = h
		return nil
	}
}

// WithNotifyHandler sets the handler of incoming NOTIFY requests. Without
// one, NOTIFY is answered 405.
func WithNotifyHandler(h NotifyHandler) Option {
	return func(c *config) error {
		if h == nil {
			return optErr("notify handler is nil")
		}
		c.notify = h
		return nil
	}
}

// WithSubscriptionExpires sets the bounds of incoming subscriptions: a
// SUBSCRIBE asking for less than min seconds (but more than 0) is answered
// 423 with Min-Expires (RFC 6665 §4.2.1.1); more than max is granted max.
// Defaults 60 and 3600.
func WithSubscriptionExpires(minSec, maxSec int) Option {
	return func(c *config) error {
		if minSec < 1 || maxSec < minSec {
			return optErr("subscription expires bounds %d..%d", minSec, maxSec)
		}
		c.minExpires, c.maxExpires = minSec, maxSec
		return nil
	}
}

// events lists the event packages we serve (Allow-Events).
func (u *UA) events() []string { return []string{"presence"} }

// eventPackage splits an Event header value: the package (lower-case) and
// whether it is well formed.
func eventPackage(v string) (string, bool) {
	pkg := strings.TrimSpace(v)
	if i := strings.IndexByte(pkg, ';'); i >= 0 {
		pkg = strings.TrimSpace(pkg[:i])
	}
	if pkg == "" || !isToken(pkg) {
		return "", false
	}
	return strings.ToLower(pkg), true
}

// acceptsType reports whether the Accept values admit mediaType (RFC 3261
// §20.1; wildcards and parameters allowed).
func acceptsType(values []string, mediaType string) bool {
	main, _, _ := strings.Cut(mediaType, "/")
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			t, _, _ := strings.Cut(item, ";")
			t = strings.ToLower(strings.TrimSpace(t))
			if t == mediaType || t == "*/*" || t == main+"/*" {
				return true
			}
		}
	}
	return false
}

func headerValues(req *sip.Request, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, h := range req.GetHeaders(n) {
			out = append(out, h.Value())
		}
	}
	return out
}

// handleSubscribe checks a SUBSCRIBE (RFC 6665 §4.2.1; PRES-20, PRES-21)
// and answers what the handler decides.
func (u *UA) handleSubscribe(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	t := u.claimTurn(req)
	defer u.seq.release(t)
	respond := func(code int, reason string, extra ...sip.Header) {
		u.refuseWith(req, tx, src, code, reason, extra...)
	}
	ev := headerValue(req, "event", "o")
	pkg, ok := eventPackage(ev)
	if !ok || eventTypes[pkg] == "" {
		respond(489, "", sip.NewHeader("Allow-Events", strings.Join(u.events(), ", ")))
		return
	}
	if acc := headerValues(req, "accept"); len(acc) > 0 && !acceptsType(acc, eventTypes[pkg]) {
		respond(406, "", sip.NewHeader("Accept", eventTypes[pkg]))
		return
	}
	requested := -1
	if v := headerValue(req, "expires"); v != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			respond(400, "Bad Expires")
			return
		}
		requested = int(min(n, 1<<31-1))
	}
	if requested > 0 && requested < u.cfg.minExpires {
		respond(423, "", sip.NewHeader("Min-Expires", strconv.Itoa(u.cfg.minExpires)))
		return
	}
	granted := u.cfg.maxExpires
	if requested >= 0 {
		granted = min(requested, u.cfg.maxExpires)
	}
	from, to := req.From(), req.To()
	fromTag, _ := from.Params.Get("tag")
	if fromTag == "" {
		respond(400, "Missing From Tag")
		return
	}
	toTag, _ := to.Params.Get("tag")
	contact := req.Contact()
	if contact == nil && toTag == "" {
		respond(400, "Missing Contact") // RFC 6665 §4.1.2.1
		return
	}
	s := &IncomingSubscribe{
		// Values kept in a Dialog are copied: sipgo's header values can
		// be slices of the whole message, which a kept substring would
		// hold in memory for the life of the subscription.
		Dialog: Dialog{
			CallID:     strings.Clone(string(*req.CallID())),
			LocalURI:   to.Address.String(),
			LocalTag:   strings.Clone(toTag),
			RemoteURI:  from.Address.String(),
			RemoteTag:  strings.Clone(fromTag),
			RouteSet:   recordRoutes(req),
			RemoteCSeq: req.CSeq().SeqNo,
			Event:      strings.Clone(strings.TrimSpace(ev)),
		},
		Initial:    toTag == "",
		Package:    pkg,
		Requested:  requested,
		Expires:    granted,
		RequestURI: req.Recipient.String(),
		Source:     src,
		Transport:  strings.ToLower(req.Transport()),
	}
	if contact != nil {
		s.Dialog.RemoteTarget = contact.Address.String()
	}
	if s.Initial {
		s.Dialog.LocalTag = token()
	}
	r := u.callSubscribe(s)
	code, reason := r.Code, r.Reason
	if code < 200 || code > 699 {
		u.log.Error("sip subscribe handler returned a bad status", "code", code)
		code, reason = 500, ""
	}
	if code == 202 {
		code = 200 // RFC 6665 §8.3.1: 202 is deprecated for SUBSCRIBE
	}
	if reason == "" || hasCtl(reason) {
		reason = reasonPhrase(code)
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	if code < 300 {
		if r.Expires > 0 && r.Expires < granted {
			granted = r.Expires
		}
		res.To().Params.Add("tag", s.Dialog.LocalTag)
		if st := u.started(); st != nil {
			if c := u.contact(st, to.Address.User, req.Transport()); c != nil {
				res.AppendHeader(c)
			}
		}
		res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(granted)))
	}
	u.log.Debug("sip subscribe answered", "source", src, "call_id", s.Dialog.CallID, "code", code, "expires", granted)
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sip respond failed", "code", code, "error", err)
	}
	if r.Then != nil {
		r.Then()
	}
}

// callSubscribe runs the handler, turning a panic into a 500.
func (u *UA) callSubscribe(s *IncomingSubscribe) (r SubscribeReply) {
	defer func() {
		if p := recover(); p != nil {
			u.log.Error("sip subscribe handler panicked", "panic", p, "source", s.Source, "call_id", s.Dialog.CallID)
			r = SubscribeReply{Code: 500}
		}
	}()
	return u.cfg.subscribe(u.ctx, s)
}

// handleNotify checks a NOTIFY (RFC 6665 §4.1.3) and answers what the
// handler decides.
func (u *UA) handleNotify(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	t := u.claimTurn(req)
	defer u.seq.release(t)
	ev := headerValue(req, "event", "o")
	pkg, ok := eventPackage(ev)
	if !ok {
		u.refuseWith(req, tx, src, 489, "", sip.NewHeader("Allow-Events", strings.Join(u.events(), ", ")))
		return
	}
	state := headerValue(req, "subscription-state")
	if strings.TrimSpace(state) == "" {
		u.refuseWith(req, tx, src, 400, "Missing Subscription-State")
		return
	}
	from, to := req.From(), req.To()
	fromTag, _ := from.Params.Get("tag")
	toTag, _ := to.Params.Get("tag")
	if toTag == "" || fromTag == "" {
		u.refuseWith(req, tx, src, 481, "") // a NOTIFY belongs to a subscription we made
		return
	}
	n := &IncomingNotify{
		CallID:            strings.Clone(string(*req.CallID())),
		LocalTag:          strings.Clone(toTag),
		RemoteTag:         strings.Clone(fromTag),
		From:              from.Address.String(),
		To:                to.Address.String(),
		RequestURI:        req.Recipient.String(),
		Package:           pkg,
		Event:             strings.TrimSpace(ev),
		SubscriptionState: strings.TrimSpace(state),
		RouteSet:          recordRoutes(req),
		CSeq:              req.CSeq().SeqNo,
		ContentLanguage:   headerValue(req, "content-language"),
		Source:            src,
	}
	if c := req.Contact(); c != nil {
		n.Contact = c.Address.String()
	}
	if ct := req.ContentType(); ct != nil {
		n.ContentType = string(*ct)
	}
	body := req.Body()
	n.BodySize = len(body)
	if len(body) > u.cfg.maxBody {
		n.TooLarge = true
	} else {
		n.Body = body
	}
	r := u.callNotify(n)
	if n.TooLarge && r.Code < 300 {
		r = Reply{Code: 413}
	}
	u.respond(req, tx, &IncomingMessage{Source: src, CallID: n.CallID}, r)
}

func (u *UA) callNotify(n *IncomingNotify) (r Reply) {
	defer func() {
		if p := recover(); p != nil {
			u.log.Error("sip notify handler panicked", "panic", p, "source", n.Source, "call_id", n.CallID)
			r = Reply{Code: 500}
		}
	}()
	return u.cfg.notify(u.ctx, n)
}

// claimTurn waits for the request's turn in its conversation (see
// sequencer); release the ticket when done.
func (u *UA) claimTurn(req *sip.Request) *ticket {
	token, err := sip.ServerTxKeyMake(req)
	if err != nil {
		return nil
	}
	return u.seq.claim(u.ctx, token, orderKey(req))
}

// recordRoutes returns the Record-Route URIs of req, in order.
func recordRoutes(req *sip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, rr.Address.String())
		}
	}
	return out
}

// started returns the listeners' state, nil before Start.
func (u *UA) started() *startedState {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state
}

// refuseWith answers a request with a final response and extra headers, and
// logs it.
func (u *UA) refuseWith(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, code int, reason string, extra ...sip.Header) {
	if reason == "" {
		reason = reasonPhrase(code)
	}
	u.log.Info("sip request refused", "source", src, "transport", strings.ToLower(req.Transport()),
		"method", string(req.Method), "code", code, "reason", reason)
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	for _, h := range extra {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sip respond failed", "code", code, "error", err)
	}
}

// ordered reports whether requests of this method get a turn in their
// conversation (the sequencer): those a handler serves.
func (u *UA) ordered(m sip.RequestMethod) bool {
	switch m {
	case sip.MESSAGE:
		return u.cfg.handler != nil
	case sip.SUBSCRIBE:
		return u.cfg.subscribe != nil
	case sip.NOTIFY:
		return u.cfg.notify != nil
	}
	return false
}
