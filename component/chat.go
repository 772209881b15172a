package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/msrp"
	"github.com/stox-gw/stox/sipside"
	"github.com/stox-gw/stox/sipside/sdp"
)

// One-to-one chat sessions over MSRP (RFC 7573; CHECKLIST section 5).
//
// A chat joins one XMPP user (bare JID) and one SIP user (AOR). It has a
// SIP INVITE dialog (a sipside.Call) and an MSRP session (msrp.Session).
// Each chat runs its own goroutine, which owns the order of what goes to
// SIP: XMPP messages are queued (bounded) while the session is being set
// up and then sent in arrival order. What comes from MSRP goes to XMPP from
// the MSRP session's read goroutine, in order.

// Namespaces of the payloads chats translate.
const (
	nsReceipts   = "urn:xmpp:receipts"
	nsChatStates = "http://jabber.org/protocol/chatstates"
)

// Chat modes (config chat.mode).
const (
	ChatModeMessage = "message" // type chat goes out as page-mode MESSAGE (default)
	ChatModeMSRP    = "msrp"    // type chat goes out over an MSRP session
	ChatModeAuto    = "auto"    // over MSRP to peers known to take it, else MESSAGE
)

// CallSender is what chats need of the SIP side (sipside.UA implements it).
type CallSender interface {
	Invite(ctx context.Context, inv *sipside.OutgoingInvite) (*sipside.Call, sipside.InviteResult, error)
}

// ChatConfig tunes chat sessions; zero values take the defaults documented
// on each field.
type ChatConfig struct {
	// Mode is ChatModeMessage (default), ChatModeMSRP or ChatModeAuto
	// (CHAT-00). Incoming sessions are accepted in every mode.
	Mode string
	// Listener is where MSRP peers connect; nil refuses every session
	// (INVITE 488) and keeps every chat in page mode.
	Listener *msrp.Listener
	// Host is the address put in SDP and in our MSRP URIs (CHAT-02a);
	// default the listener's IP.
	Host string
	// Idle ends a session (BYE) after this long without a message either
	// way (CHAT-61); default 10 min.
	Idle time.Duration
	// Queue bounds the XMPP messages waiting in one session; default 100.
	Queue int
	// MaxSessions bounds the sessions at once; default 10000.
	MaxSessions int
	// SetupTimeout bounds the INVITE and the MSRP connection; default 32 s.
	SetupTimeout time.Duration
	// SendTimeout bounds one message's delivery (its 200s and, when a
	// receipt was asked for, its success REPORT); default 32 s.
	SendTimeout time.Duration
}

func (c *ChatConfig) setDefaults() {
	if c.Mode == "" {
		c.Mode = ChatModeMessage
	}
	if c.Idle <= 0 {
		c.Idle = 10 * time.Minute
	}
	if c.Queue <= 0 {
		c.Queue = 100
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
	if c.SetupTimeout <= 0 {
		c.SetupTimeout = 32 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 32 * time.Second
	}
}

// ourAcceptTypes are the types we take in a session, message/cpim first
// (CHAT-03).
var ourAcceptTypes = []string{"message/cpim", "text/plain", mapping.IsComposingContentType}

// ourWrappedTypes are the types we take inside message/cpim.
var ourWrappedTypes = []string{"text/plain", mapping.IsComposingContentType}

type chatKey struct{ jid, uri string } // XMPP user bare JID, SIP AOR

// chatEngine holds the chats.
type chatEngine struct {
	g     *Gateway
	calls CallSender
	cfg   ChatConfig
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	chats  map[chatKey]*chat
	// capable remembers, for ChatModeAuto, the SIP AORs known to take MSRP
	// sessions (true: they started one, or answered ours; false: they
	// refused one with 488 or 415).
	capable map[string]bool
}

const maxCapable = 100000

func newChats(g *Gateway, calls CallSender, cfg ChatConfig) *chatEngine {
	cfg.setDefaults()
	if cfg.Host == "" && cfg.Listener != nil {
		if a, ok := cfg.Listener.Addr().(interface{ String() string }); ok {
			host := a.String()
			if i := strings.LastIndexByte(host, ':'); i > 0 {
				host = strings.Trim(host[:i], "[]")
			}
			cfg.Host = host
		}
	}
	e := &chatEngine{
		g:       g,
		calls:   calls,
		cfg:     cfg,
		log:     g.log.With("part", "chat"),
		chats:   make(map[chatKey]*chat),
		capable: make(map[string]bool),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e
}

// close ends every chat (BYE, bounded by grace) and waits for them.
func (e *chatEngine) close(grace time.Duration) {
	e.mu.Lock()
	e.closed = true
	all := make([]*chat, 0, len(e.chats))
	for _, c := range e.chats {
		all = append(all, c)
	}
	e.mu.Unlock()
	for _, c := range all {
		c.stop(grace)
	}
	// Sessions being set up, and messages waiting for their outcome, are
	// given grace; then their context ends (a session in its INVITE does
	// not see stop).
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		e.cancel()
		<-done
	}
	e.cancel()
}

func (e *chatEngine) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.chats)
}

func (e *chatEngine) setCapable(uri string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.capable) >= maxCapable {
		for k := range e.capable {
			delete(e.capable, k)
			break
		}
	}
	e.capable[uri] = ok
}

// chatOut is one XMPP message for a session.
type chatOut struct {
	stanza   *Element
	id       string // the stanza id
	text     string // the body ("" for none)
	state    string // XEP-0085 chat state, "" for none
	receipt  bool   // <request/> (CHAT-40)
	received string // <received id='...'/>: the id of our stanza it acknowledges (CHAT-42)
}

// chat is one session.
type chat struct {
	e        *chatEngine
	key      chatKey
	sipJID   string // the SIP user's bare JID, from of our stanzas
	userURI  string // the XMPP user as a SIP URI
	outbound bool
	log      *slog.Logger

	kick     chan struct{}
	quit     chan time.Duration
	replaced atomic.Bool // a newer session of the same pair took over
	done     chan struct{}
	// inflight counts the messages whose outcome is awaited; only the
	// chat's goroutine adds to it (sendText) and waits for it (drain).
	inflight sync.WaitGroup

	mu       sync.Mutex
	xmppTo   string // the bare JID until the user answers from a full JID (CHAT-12)
	queue    []*chatOut
	waiting  bool // the session is not up yet
	ended    bool
	call     *sipside.Call
	ms       *msrp.Session
	peer     sdp.MSRPMedia
	thread   string
	last     time.Time
	inAcks   map[string]*msrp.Message // our stanza id -> incoming message that asked for a receipt
	inAckIDs []string                 // insertion order, to bound inAcks
	outAcks  map[string]string        // MSRP Message-ID -> XMPP id, receipts asked for
	spoke    bool                     // a message from MSRP went to XMPP
}

const maxAcks = 256

// route takes an XMPP message for a chat session when one exists for the
// pair or the mode says to open one (CHAT-00), and reports whether it did.
// Page mode handles the rest.
func (e *chatEngine) route(e2 *Element, xm mapping.XMPPMessage) bool {
	out := chatOutFrom(e2)
	// XEP-0184 receipts usually carry no type: one for a message of a
	// session goes back over it (CHAT-42); it never opens one.
	if e.cfg.Listener == nil || e2.AttrValue("type") != "chat" && (out.received == "" || out.text != "") {
		return false
	}
	user, userURI, sipJID, sipURI, err := e.g.xmppParties(xm.From, xm.To)
	if err != nil {
		return false // page mode answers the addressing error
	}
	key := chatKey{jid: user, uri: sipURI}
	e.mu.Lock()
	c := e.chats[key]
	if c == nil {
		open := e.cfg.Mode == ChatModeMSRP || e.cfg.Mode == ChatModeAuto && e.capable[sipURI]
		if !open || out.text == "" || e2.AttrValue("type") != "chat" || e.closed {
			e.mu.Unlock()
			return false
		}
		if len(e.chats) >= e.cfg.MaxSessions {
			e.mu.Unlock()
			e.g.replyError(e2, mapping.StanzaError{Type: "wait", Condition: "resource-constraint", Text: "too many chat sessions"})
			return true
		}
		c = e.newChat(key, sipJID, userURI, true)
		c.xmppTo = user
		if safeCallID(xm.Thread) {
			c.thread = xm.Thread // CHAT-01d
		}
		// The first message is queued before the session's goroutine
		// starts: a setup that fails at once must find it there, to send
		// it in page mode or answer it (setupFailed), not refuse it as
		// sent to a session that has ended. No one else sees c yet, so
		// offer neither blocks nor answers.
		c.offer(out, xm.From)
		e.chats[key] = c
		e.wg.Add(1)
		go c.runOutbound()
		e.mu.Unlock()
		return true
	}
	e.mu.Unlock()
	c.offer(out, xm.From)
	return true
}

func (e *chatEngine) newChat(key chatKey, sipJID, userURI string, outbound bool) *chat {
	return &chat{
		e: e, key: key, sipJID: sipJID, userURI: userURI, outbound: outbound,
		log:     e.log.With("user", key.jid, "contact", key.uri),
		kick:    make(chan struct{}, 1),
		quit:    make(chan time.Duration, 1),
		done:    make(chan struct{}),
		waiting: true,
		last:    time.Now(),
		inAcks:  make(map[string]*msrp.Message),
		outAcks: make(map[string]string),
	}
}

// chatOutFrom reads what a session carries of an XMPP message.
func chatOutFrom(e *Element) *chatOut {
	o := &chatOut{stanza: e, id: e.AttrValue("id")}
	for _, c := range e.Children {
		switch {
		case c.Space == e.Space && c.Local == "body" && o.text == "":
			o.text = c.Text
		case c.Space == nsChatStates:
			o.state = c.Local
		case c.Space == nsReceipts && c.Local == "request":
			o.receipt = true
		case c.Space == nsReceipts && c.Local == "received":
			o.received = c.AttrValue("id")
		}
	}
	return o
}

// offer queues an XMPP message for the session.
func (c *chat) offer(o *chatOut, from string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		c.e.g.replyError(o.stanza, mapping.StanzaError{Type: "wait", Condition: "recipient-unavailable", Text: "the chat session has ended"})
		return
	}
	// CHAT-12: lock onto the full JID the user answers from.
	if strings.IndexByte(from, '/') > 0 {
		c.xmppTo = from
	}
	if len(c.queue) >= c.e.cfg.Queue {
		c.mu.Unlock()
		c.e.g.replyError(o.stanza, stanzaErrorFor(ErrQueueFull))
		return
	}
	c.queue = append(c.queue, o)
	c.last = time.Now()
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *chat) stop(grace time.Duration) {
	select {
	case c.quit <- grace:
	default:
	}
}

// runOutbound sets the session up (RFC 7573 §4, CHAT-01..05), then runs it.
func (c *chat) runOutbound() {
	defer c.e.wg.Done()
	defer close(c.done)
	if err := c.establish(); err != nil {
		c.setupFailed(err)
		return
	}
	c.run()
}

// setupError is a failed INVITE: the final response, or nil.
type setupError struct {
	res *sipside.InviteResult
	err error
}

func (s *setupError) Error() string {
	if s.res != nil {
		return fmt.Sprintf("chat: INVITE answered %d %s", s.res.Code, s.res.Reason)
	}
	return "chat: " + s.err.Error()
}

func (s *setupError) Unwrap() error { return s.err }

// establish sends the INVITE with our offer, reads the answer and connects
// to the peer's path (we are the offerer and the active side, CHAT-04).
func (c *chat) establish() error {
	e := c.e
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.SetupTimeout)
	defer cancel()
	local := e.cfg.Listener.URL(e.cfg.Host)
	offer, err := sdp.BuildOffer(sdp.Origin{SessionID: uint64(time.Now().UnixNano()), SessionVersion: 1}, sdp.MSRPMedia{
		Addr: e.cfg.Host, Port: local.Port, TLS: local.Secure, Path: []string{local.String()},
		AcceptTypes: ourAcceptTypes, AcceptWrappedTypes: ourWrappedTypes,
		MaxSize: int64(e.g.cfg.MaxStanzaSize),
	})
	if err != nil {
		return &setupError{err: err}
	}
	call, res, err := e.calls.Invite(ctx, &sipside.OutgoingInvite{
		RequestURI: c.key.uri, From: c.userURI, To: c.key.uri, CallID: c.thread,
		ContentType: "application/sdp", Body: offer,
	})
	if err != nil {
		return &setupError{err: err}
	}
	if call == nil || res.Code >= 300 {
		if res.Code == 488 || res.Code == 415 || res.Code == 606 {
			e.setCapable(c.key.uri, false)
		}
		return &setupError{res: &res}
	}
	fail := func(err error) error {
		// Not e.ctx: the BYE must go out at shutdown too.
		byeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = call.Bye(byeCtx)
		return &setupError{err: err}
	}
	peer, err := sdp.ParseMSRP(res.Body)
	if err != nil {
		return fail(err)
	}
	remote, err := msrp.ParsePath(strings.Join(peer.Path, " "))
	if err != nil {
		return fail(err)
	}
	// Success REPORTs wait for the XMPP user's receipt (CHAT-42).
	opts := []msrp.Option{msrp.WithHandler(c.handler()), msrp.WithLogger(c.log), msrp.WithManualSuccessReports()}
	if len(remote) > 1 {
		// Through a relay (RFC 4976), connect from the listener's port: the
		// relay delivers the peer's frames to the address in our URI
		// (msrp.Listener.Dialer). A peer without relays answers on the
		// connection we open, so it gets one from a port of its own: one
		// from the listener's port would need the same two addresses as an
		// earlier session's connection to a client that takes every session
		// on one port (while that connection lasts, or is still closing),
		// and connect would fail with EADDRNOTAVAIL.
		opts = append(opts, msrp.WithDialer(e.cfg.Listener.Dialer()))
	}
	ms, err := msrp.Dial(ctx, local, remote, opts...)
	if err != nil {
		return fail(err)
	}
	e.setCapable(c.key.uri, true)
	c.mu.Lock()
	c.call, c.ms, c.peer, c.thread = call, ms, peer, call.Dialog().CallID
	c.waiting = false
	c.mu.Unlock()
	c.log.Info("chat session up", "direction", "xmpp_to_sip", "call_id", c.thread, "path", msrp.FormatPath(remote))
	return nil
}

// setupFailed answers what was queued: page mode when the peer does not do
// MSRP (CHAT-00, derived), else an error stanza each (ERR-04).
func (c *chat) setupFailed(err error) {
	c.e.remove(c)
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.ended = true
	c.mu.Unlock()
	var se *setupError
	errors.As(err, &se)
	fallback := se != nil && se.res != nil && (se.res.Code == 488 || se.res.Code == 415 || se.res.Code == 606)
	c.log.Info("chat session not set up", "err", err, "fallback", fallback)
	for _, o := range q {
		switch {
		case fallback:
			c.e.g.pageMode(o.stanza, messageFromStanza(o.stanza))
		case o.text == "":
			// chat states and receipts are dropped with the session
		case se != nil && se.res != nil:
			c.e.g.replyError(o.stanza, c.e.g.addr.ErrorForSIP(se.res.Code, se.res.Reason, se.res.Contact))
		default:
			c.e.g.replyError(o.stanza, stanzaErrorFor(errors.Unwrap(err)))
		}
	}
}

// remove forgets c in the engine.
func (e *chatEngine) remove(c *chat) {
	e.mu.Lock()
	if e.chats[c.key] == c {
		delete(e.chats, c.key)
	}
	e.mu.Unlock()
}

// run sends the queue in order and ends the session on BYE, connection
// loss, inactivity, gone or shutdown (CHAT-60..62).
func (c *chat) run() {
	c.mu.Lock()
	call, ms := c.call, c.ms
	c.mu.Unlock()
	idle := time.NewTimer(c.e.cfg.Idle)
	defer idle.Stop()
	// What was queued during setup, and what comes while it goes out,
	// may end with <gone/> as well as anything later.
	if c.flush() {
		c.end("gone", true, false, chatDrain)
		return
	}
	for {
		select {
		case <-c.kick:
			if c.flush() {
				c.end("gone", true, false, chatDrain)
				return
			}
		case <-call.Done():
			c.end("bye", false, true, 0)
			return
		case <-ms.Done():
			c.end("msrp", true, true, 0)
			return
		case <-idle.C:
			c.mu.Lock()
			left := c.e.cfg.Idle - time.Since(c.last)
			c.mu.Unlock()
			if left > 0 {
				idle.Reset(left)
				continue
			}
			c.end("idle", true, true, chatDrain)
			return
		case grace := <-c.quit:
			if c.replaced.Load() {
				c.end("replaced", true, false, grace) // the newer session goes on
				return
			}
			c.end("closed", true, true, grace) // she learns the session is gone (CHAT-60)
			return
		case <-c.e.ctx.Done():
			c.end("closed", true, true, 0)
			return
		}
	}
}

// flush sends what is queued; it reports whether the XMPP user said gone.
func (c *chat) flush() (gone bool) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return false
		}
		o := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if o.state == mapping.ChatStateGone && o.text == "" {
			return true // CHAT-60b
		}
		c.send(o)
	}
}

// send puts one XMPP message on the MSRP session.
func (c *chat) send(o *chatOut) {
	if o.received != "" {
		c.mu.Lock()
		m := c.inAcks[o.received]
		delete(c.inAcks, o.received)
		c.mu.Unlock()
		if m != nil {
			_ = c.ms.Report(m, msrp.StatusOK, "OK") // CHAT-42
		}
	}
	if o.text != "" {
		c.sendText(o)
	}
	// A message resets the peer's composing state by itself (RFC 3994
	// §3.3): <active/> with a body sends no isComposing.
	if o.state != "" && o.state != mapping.ChatStateGone && !(o.text != "" && o.state == mapping.ChatStateActive) {
		c.sendState(o.state)
	}
}

// sendText sends a body as text/plain, or wrapped in CPIM for a peer that
// takes only that (CHAT-29, CHAT-30), and answers failures and receipts.
func (c *chat) sendText(o *chatOut) {
	m := &msrp.Message{ContentType: "text/plain;charset=UTF-8", Body: []byte(o.text), SuccessReport: o.receipt}
	if !c.peer.Accepts("text/plain") {
		if !c.peer.Accepts("message/cpim") || !c.peer.AcceptsWrapped("text/plain") {
			c.e.g.replyError(o.stanza, mapping.StanzaError{Type: "cancel", Condition: "not-acceptable", Text: "the SIP peer takes no text in this session"})
			return
		}
		var cm mapping.CPIMMessage
		cm.AddAddress("From", mapping.CPIMAddress{URI: c.userURI})
		cm.AddAddress("To", mapping.CPIMAddress{URI: c.key.uri})
		cm.AddDateTime(time.Now().UTC().Format(time.RFC3339Nano))
		cm.AddMIME("Content-Type", "text/plain;charset=UTF-8")
		cm.Body = m.Body
		b, err := cm.Marshal()
		if err != nil {
			c.e.g.replyError(o.stanza, mapping.StanzaError{Type: "modify", Condition: "bad-request", Text: "message cannot be wrapped in CPIM"})
			return
		}
		m.ContentType, m.Body = "message/cpim", b
	}
	wait, err := c.ms.Enqueue(m)
	if err != nil {
		c.replyMSRPError(o, err)
		return
	}
	if o.receipt {
		c.mu.Lock()
		if len(c.outAcks) < maxAcks {
			c.outAcks[m.ID] = o.id
		}
		c.mu.Unlock()
	}
	c.e.wg.Add(1)
	c.inflight.Add(1)
	go func() {
		defer c.e.wg.Done()
		defer c.inflight.Done()
		ctx, cancel := context.WithTimeout(c.e.ctx, c.e.cfg.SendTimeout)
		defer cancel()
		err := wait(ctx)
		switch {
		case err == nil && o.receipt:
			c.receipt(m.ID)
		case err == nil:
		case o.receipt && errors.Is(err, msrp.ErrTimeout):
			// The REPORT may still come (Handler.Report): no error.
			c.log.Debug("no success report yet", "message_id", m.ID)
		default:
			c.replyMSRPError(o, err)
		}
	}()
}

// receipt sends <received/> for the XMPP message sent as Message-ID id
// (CHAT-41).
func (c *chat) receipt(msgID string) {
	c.mu.Lock()
	id, ok := c.outAcks[msgID]
	delete(c.outAcks, msgID)
	to := c.xmppTo
	c.mu.Unlock()
	if !ok || id == "" {
		return
	}
	e := NewElement(nsComponent, "message").SetAttr("from", c.sipJID).SetAttr("to", to).SetAttr("id", c.e.g.newID())
	e.Add(NewElement(nsReceipts, "received").SetAttr("id", id))
	c.e.g.sendLogged(e)
}

func (c *chat) replyMSRPError(o *chatOut, err error) {
	var se mapping.StanzaError
	var st *msrp.StatusError
	switch {
	case errors.As(err, &st):
		se = mapping.ErrorForMSRP(st.Code, st.Reason, false)
	case errors.Is(err, msrp.ErrTimeout):
		se = mapping.ErrorForTimeout()
	default:
		se = mapping.StanzaError{Type: "wait", Condition: "recipient-unavailable", Text: "the chat session failed"}
	}
	c.log.Info("chat message to SIP failed", "id", o.id, "condition", se.Condition, "err", err)
	c.e.g.replyError(o.stanza, se)
}

// sendState sends a chat state as isComposing when the peer takes it
// (CHAT-50, CHAT-51).
func (c *chat) sendState(state string) {
	if !c.peer.Accepts(mapping.IsComposingContentType) {
		return
	}
	ic, ok := mapping.IsComposingFromChatState(state, time.Now().UTC().Format(time.RFC3339), "text/plain", 0)
	if !ok {
		return
	}
	b, err := ic.Marshal()
	if err != nil {
		return
	}
	m := &msrp.Message{ContentType: mapping.IsComposingContentType, Body: b, FailureReport: msrp.ReportNo}
	if _, err := c.ms.Enqueue(m); err != nil {
		c.log.Debug("chat state not sent", "err", err)
	}
}

// chatDrain is how long a session we end (gone, idle) waits for the
// messages in flight before it closes the MSRP session: a message sent
// just before <gone/> is delivered, not cut off.
const chatDrain = 2 * time.Second

// end closes the session: BYE unless the peer sent it; gone to XMPP unless
// the XMPP user said gone (CHAT-60); what is still queued is answered with
// an error (nothing is dropped silently). When we end a working session,
// messages in flight get up to drain to settle first.
func (c *chat) end(why string, bye, gone bool, drain time.Duration) {
	c.e.remove(c)
	c.mu.Lock()
	c.ended = true
	q := c.queue
	c.queue = nil
	call, ms, to, thread := c.call, c.ms, c.xmppTo, c.thread
	c.mu.Unlock()
	c.log.Info("chat session ended", "reason", why, "call_id", thread)
	for _, o := range q {
		if o.text != "" {
			c.e.g.replyError(o.stanza, mapping.StanzaError{Type: "wait", Condition: "recipient-unavailable", Text: "the chat session has ended"})
		}
	}
	c.drain(drain)
	// BYE first, then close MSRP: a peer that reads a closed connection as
	// the end of the session would otherwise send its own BYE, crossing ours.
	if bye && call != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = call.Bye(ctx)
		cancel()
	}
	if ms != nil {
		ms.Close()
	}
	if gone {
		e := NewElement(nsComponent, "message").SetAttr("from", c.sipJID).SetAttr("to", to).
			SetAttr("type", "chat").SetAttr("id", c.e.g.newID())
		if thread != "" {
			e.Add(TextElement(nsComponent, "thread", thread))
		}
		e.Add(NewElement(nsChatStates, mapping.ChatStateGone))
		c.e.g.sendLogged(e)
	}
}

// drain waits up to d for the messages in flight to settle.
func (c *chat) drain(d time.Duration) {
	if d <= 0 {
		return
	}
	done := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// The waiters end when the session closes, right after.
	}
}

// handler is the MSRP side of the chat: messages, reports, connection loss.
func (c *chat) handler() msrp.Handler {
	return msrp.Handler{
		Message: func(s *msrp.Session, m *msrp.Message) { c.fromMSRP(s, m) },
		Report: func(s *msrp.Session, r *msrp.Report) {
			if r.Err() == nil {
				c.receipt(r.MessageID)
			}
		},
	}
}

// fromMSRP turns one complete MSRP message into an XMPP message (RFC 7573
// §5, CHAT-12, CHAT-24..26, CHAT-30, CHAT-42, CHAT-50).
func (c *chat) fromMSRP(s *msrp.Session, m *msrp.Message) {
	ct, body := m.ContentType, m.Body
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		_ = s.Report(m, 415, "Unsupported Media Type")
		return
	}
	if mt == "message/cpim" {
		cm, err := mapping.ParseCPIM(body)
		if err != nil {
			c.log.Info("chat message refused: bad CPIM", "err", err)
			_ = s.Report(m, 400, "Bad Request")
			return
		}
		// The CPIM From is never trusted over the SIP identity (CHAT-30).
		if from, ok := cm.From(); !ok || !mapping.CPIMFromMatches(from.URI, c.key.uri) {
			c.log.Warn("chat message refused: CPIM From is not the session's peer", "cpim_from", from.URI)
			_ = s.Report(m, 403, "Forbidden")
			return
		}
		ct, body = cm.ContentType(), cm.Body
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			_ = s.Report(m, 415, "Unsupported Media Type")
			return
		}
	}
	c.mu.Lock()
	c.last = time.Now()
	to, thread := c.xmppTo, c.thread
	c.mu.Unlock()
	e := NewElement(nsComponent, "message").SetAttr("from", c.sipJID).SetAttr("to", to).
		SetAttr("type", "chat").SetAttr("id", c.e.g.newID())
	if thread != "" {
		e.Add(TextElement(nsComponent, "thread", thread))
	}
	switch mt {
	case "text/plain":
		e.Add(TextElement(nsComponent, "body", string(body)))
		e.Add(NewElement(nsChatStates, mapping.ChatStateActive))
		if m.SuccessReport {
			e.Add(NewElement(nsReceipts, "request")) // CHAT-42
			c.mu.Lock()
			id := e.AttrValue("id")
			c.inAcks[id] = m
			c.inAckIDs = append(c.inAckIDs, id)
			if len(c.inAckIDs) > maxAcks {
				delete(c.inAcks, c.inAckIDs[0])
				c.inAckIDs = c.inAckIDs[1:]
			}
			c.mu.Unlock()
		}
	case mapping.IsComposingContentType:
		ic, err := mapping.ParseIsComposing(body)
		if err != nil {
			_ = s.Report(m, 400, "Bad Request")
			return
		}
		e.Add(NewElement(nsChatStates, mapping.ChatStateFromIsComposing(ic)))
	default:
		c.log.Info("chat message refused: unsupported type", "content_type", ct)
		_ = s.Report(m, 415, "Unsupported Media Type")
		return
	}
	if b := e.Bytes(); len(b) > c.e.g.cfg.MaxStanzaSize {
		_ = s.Report(m, 413, "Message Too Large") // CHAT-27
		return
	}
	if _, err := c.e.g.send(e); err != nil {
		c.log.Warn("chat message not delivered to XMPP", "err", err)
		_ = s.Report(m, 503, "Service Unavailable")
		return
	}
	c.mu.Lock()
	c.spoke = true
	c.mu.Unlock()
	if m.SuccessReport && mt != "text/plain" {
		_ = s.Report(m, msrp.StatusOK, "OK") // no XMPP receipt will come for it
	}
}

// HandleSIPInvite is the sipside.InviteHandler: an MSRP session from a SIP
// user to an XMPP user (RFC 7573 §5, CHAT-10, CHAT-11). stox answers for
// the XMPP user (auto-accept, RFC 4975 §8.8) as the passive side.
func (g *Gateway) HandleSIPInvite(_ context.Context, inv *sipside.IncomingInvite) sipside.InviteReply {
	e := g.chats
	if e == nil || e.cfg.Listener == nil {
		return sipside.InviteReply{Code: 488, Reason: "Sessions Not Supported"}
	}
	refuse := func(code int, why string, err error) sipside.InviteReply {
		g.log.Info("SIP INVITE refused", "code", code, "from", inv.From, "to", inv.RequestURI, "why", why, "err", err)
		return sipside.InviteReply{Code: code}
	}
	userFull, sipJID, sipURI, err := g.sipParties(inv.RequestURI, inv.From)
	if err != nil {
		return refuse(sipReplyFor(err).Code, "address", err)
	}
	mt, _, _ := mime.ParseMediaType(inv.ContentType)
	if mt != "application/sdp" {
		return sipside.InviteReply{Code: 415, Headers: map[string]string{"Accept": "application/sdp"}}
	}
	offer, err := sdp.ParseMSRP(inv.Body)
	if err != nil {
		return refuse(488, "no usable MSRP stream", err)
	}
	types, err := sdp.Negotiate(offer, ourAcceptTypes)
	if err != nil || !(offer.Accepts("text/plain") || offer.Accepts("message/cpim")) {
		return refuse(488, "no common content type", err) // CHAT-10c
	}
	remote, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		return refuse(488, "bad path", err)
	}
	user := bareJID(userFull)
	key := chatKey{jid: user, uri: sipURI}
	userURI, err := g.addr.XMPPUserURI(user)
	if err != nil {
		return refuse(404, "address", err)
	}
	c := e.newChat(key, sipJID, userURI, false)
	c.xmppTo = userFull // a gr selects the resource
	// Set before Expect: the session's read goroutine reads them.
	c.peer, c.thread = offer, inv.Dialog.CallID
	local := e.cfg.Listener.URL(e.cfg.Host)
	ms, err := e.cfg.Listener.Expect(local, remote, msrp.WithHandler(c.handler()), msrp.WithLogger(c.log),
		msrp.WithManualSuccessReports()) // CHAT-42
	if err != nil {
		return refuse(500, "msrp", err)
	}
	answer, err := sdp.BuildAnswer(sdp.Origin{SessionID: uint64(time.Now().UnixNano()), SessionVersion: 1}, sdp.MSRPMedia{
		Addr: e.cfg.Host, Port: local.Port, TLS: local.Secure, Path: []string{local.String()},
		AcceptTypes: types, AcceptWrappedTypes: ourWrappedTypes, MaxSize: int64(g.cfg.MaxStanzaSize),
	})
	if err != nil {
		ms.Close()
		return refuse(500, "sdp", err)
	}
	c.mu.Lock()
	c.ms = ms
	c.mu.Unlock()
	e.mu.Lock()
	if e.closed || len(e.chats) >= e.cfg.MaxSessions {
		e.mu.Unlock()
		ms.Close()
		return sipside.InviteReply{Code: 486, Reason: "Too Many Sessions"}
	}
	old := e.chats[key]
	e.chats[key] = c
	e.mu.Unlock()
	if old != nil {
		old.replaced.Store(true)
		old.stop(time.Second) // the newer session replaces it
	}
	e.setCapable(sipURI, true)
	return sipside.InviteReply{Code: 200, ContentType: "application/sdp", Body: answer, Then: func(call *sipside.Call) {
		if call == nil {
			// No call (CANCEL, no ACK, or a BYE that overtook the ACK):
			// if the peer's messages reached the user already, she
			// learns that the session is over (CHAT-60a).
			c.mu.Lock()
			spoke := c.spoke
			c.mu.Unlock()
			c.end("not established", false, spoke, 0)
			return
		}
		c.mu.Lock()
		c.call = call
		c.waiting = false
		c.mu.Unlock()
		// The ACK may come after close began: then close neither waits
		// for this session nor may the wait group grow.
		e.mu.Lock()
		closed := e.closed
		if !closed {
			e.wg.Add(1)
		}
		e.mu.Unlock()
		if closed {
			c.mu.Lock()
			spoke := c.spoke
			c.mu.Unlock()
			c.end("closed", true, spoke, 0) // gone once messages reached her
			return
		}
		c.log.Info("chat session up", "direction", "sip_to_xmpp", "call_id", c.thread)
		go func() {
			defer e.wg.Done()
			defer close(c.done)
			c.run()
		}()
	}}
}

// safeCallID reports whether an XMPP thread can be a Call-ID as it is
// (CHAT-01d): word characters only, and not too long.
func safeCallID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+~", c) >= 0) {
			return false
		}
	}
	return true
}
