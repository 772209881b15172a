//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/msrp"
	"github.com/stox-gw/stox/sipside/sdp"
)

// MSRP chat sessions (RFC 4975, RFC 7573) of the SIP user bob, in the demo's
// SIP agent. bob's INVITE dialogs use sipgo's DialogUA (bob is a plain SIP
// phone here); his MSRP side is stox's msrp package:
//   - bob starts a chat (call): he INVITEs an XMPP user, straight at stox, with an
//     MSRP offer carrying his own MSRP URI; as the offerer he is the active
//     side (RFC 4975 s5.4), so he connects (msrp.Dial) to the path in
//     stox's answer;
//   - stox starts one (onInvite: stox's INVITE reaches bob through the
//     agent, its outbound proxy): bob answers with his MSRP URI and, as the
//     answerer, is the passive side: he waits on his MSRP listener
//     (msrp.Listener.Expect) for stox to connect.
// BYE either way ends the session.

const chatHost = "127.0.0.1" // bob's MSRP address (loopback only)

// bobAcceptTypes and bobWrappedTypes are what bob's SDP accepts.
var (
	bobAcceptTypes  = []string{"text/plain", "message/cpim", mapping.IsComposingContentType}
	bobWrappedTypes = []string{"text/plain", mapping.IsComposingContentType}
)

// chatSide is the agent's state for bob's chats.
type chatSide struct {
	lis *msrp.Listener // bob's MSRP endpoint
	dua sipgo.DialogUA

	mu    sync.Mutex
	chats map[string]*bobChat // by Call-ID
	// events gets what happens in bob's chats (never blocks: the script
	// reads it, later nobody does).
	events chan chatEvent
}

// bobChat is one chat session of bob.
type bobChat struct {
	a      *agent
	callID string
	peer   string // the XMPP user's SIP URI (sip:alice@example.com)

	mu    sync.Mutex
	out   *sipgo.DialogClientSession // bob called
	in    *sipgo.DialogServerSession // bob was called
	ms    *msrp.Session
	ended bool
}

// chatEvent is one thing that happened in a chat of bob.
type chatEvent struct {
	kind   string // evUp, evText, evComposing, evBye or evLost
	callID string
	peer   string
	text   string // evText: the message; evComposing: the isComposing state
	chat   *bobChat
}

const (
	evUp        = "up"        // a session stox started is up (bob answered, stox connected)
	evText      = "text"      // bob got a text message
	evComposing = "composing" // bob got an isComposing document
	evBye       = "bye"       // stox hung up (BYE)
	evLost      = "lost"      // the MSRP connection ended without a BYE first
)

func (cs *chatSide) init(a *agent) error {
	lis, err := msrp.Listen("tcp", net.JoinHostPort(chatHost, "0"))
	if err != nil {
		return fmt.Errorf("bob's MSRP listener: %w", err)
	}
	_, port, _ := net.SplitHostPort(a.addr)
	p, _ := strconv.Atoi(port)
	cs.lis = lis
	cs.dua = sipgo.DialogUA{
		Client:     a.cli,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: p}},
	}
	cs.chats = map[string]*bobChat{}
	cs.events = make(chan chatEvent, 64)
	return nil
}

func (cs *chatSide) emit(ev chatEvent) {
	select {
	case cs.events <- ev:
	default:
	}
}

func (cs *chatSide) get(callID string) *bobChat {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.chats[callID]
}

func (cs *chatSide) forget(c *bobChat) {
	cs.mu.Lock()
	if cs.chats[c.callID] == c {
		delete(cs.chats, c.callID)
	}
	cs.mu.Unlock()
}

// close ends bob's MSRP sessions and his listener (stox has stopped by
// then: it sent its BYEs).
func (cs *chatSide) close() {
	if cs.lis == nil {
		return
	}
	cs.mu.Lock()
	all := make([]*bobChat, 0, len(cs.chats))
	for _, c := range cs.chats {
		all = append(all, c)
	}
	cs.chats = map[string]*bobChat{}
	cs.mu.Unlock()
	for _, c := range all {
		c.closeMSRP()
	}
	_ = cs.lis.Close()
}

func (c *bobChat) session() *msrp.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ms
}

func (c *bobChat) dialogs() (*sipgo.DialogClientSession, *sipgo.DialogServerSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out, c.in
}

// closeMSRP ends bob's MSRP session (it waits for its goroutines).
func (c *bobChat) closeMSRP() {
	c.mu.Lock()
	ms := c.ms
	c.ended = true
	c.mu.Unlock()
	if ms != nil {
		_ = ms.Close()
	}
}

// handler is bob's MSRP side: it prints what he gets and tells the script.
func (c *bobChat) handler() msrp.Handler {
	con := c.a.con
	return msrp.Handler{
		Message: func(_ *msrp.Session, m *msrp.Message) {
			ct, body := m.ContentType, m.Body
			mt, _, _ := mime.ParseMediaType(ct)
			if mt == "message/cpim" {
				if cm, err := mapping.ParseCPIM(body); err == nil {
					ct, body = cm.ContentType(), cm.Body
					mt, _, _ = mime.ParseMediaType(ct)
				}
			}
			switch mt {
			case "text/plain":
				con.printf("msrp", "SIP bob got over MSRP: %q (from %s, Message-ID %s) -> 200 OK", body, c.peer, m.ID)
				c.a.chat.emit(chatEvent{kind: evText, callID: c.callID, peer: c.peer, text: string(body), chat: c})
				if c.a.echo.Load() {
					c.echo(string(body))
				}
			case mapping.IsComposingContentType:
				ic, err := mapping.ParseIsComposing(body)
				if err != nil {
					con.printf("msrp", "SIP bob got a bad isComposing document: %v", err)
					return
				}
				what := "idle"
				if ic.State == mapping.ComposingActive {
					what = "active: " + c.peer + " is typing"
				}
				con.printf("msrp", "SIP bob got over MSRP: isComposing, state %s", what)
				c.a.chat.emit(chatEvent{kind: evComposing, callID: c.callID, peer: c.peer, text: ic.State, chat: c})
			default:
				con.printf("msrp", "SIP bob got over MSRP a %s message of %d bytes", ct, len(body))
			}
		},
		Closed: func(_ *msrp.Session, err error) {
			c.mu.Lock()
			ended := c.ended
			c.mu.Unlock()
			if ended {
				return
			}
			con.printf("msrp", "SIP bob's MSRP connection for call %s ended: %v", c.callID, err)
			c.a.chat.emit(chatEvent{kind: evLost, callID: c.callID, peer: c.peer, chat: c})
		},
	}
}

// echo makes bob answer a message over the session (after the script).
func (c *bobChat) echo(body string) {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil { // closing: wg.Wait may have begun
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
		defer cancel()
		if err := c.send(ctx, "bob (the demo's SIP user) got your message over MSRP: "+body); err != nil && a.ctx.Err() == nil {
			a.con.printf("msrp", "SIP bob's answer to %s: %v", c.peer, err)
		}
	}()
}

// send sends a text message over the session and waits for its 200.
func (c *bobChat) send(ctx context.Context, text string) error {
	ms := c.session()
	if ms == nil {
		return errors.New("no MSRP session")
	}
	if err := ms.Send(ctx, &msrp.Message{ContentType: "text/plain;charset=UTF-8", Body: []byte(text)}); err != nil {
		return err
	}
	c.a.con.printf("msrp", "SIP bob -> %s over MSRP: %q: 200 OK", c.peer, text)
	return nil
}

// composing sends an isComposing document (RFC 3994): bob is typing.
func (c *bobChat) composing(ctx context.Context) error {
	ms := c.session()
	if ms == nil {
		return errors.New("no MSRP session")
	}
	doc, err := mapping.IsComposing{State: mapping.ComposingActive, ContentType: "text/plain", Refresh: 60}.Marshal()
	if err != nil {
		return err
	}
	if err := ms.Send(ctx, &msrp.Message{ContentType: mapping.IsComposingContentType, Body: doc}); err != nil {
		return err
	}
	c.a.con.printf("msrp", "SIP bob -> %s over MSRP: isComposing, state active (bob is typing): 200 OK", c.peer)
	return nil
}

// hangUp sends bob's BYE, then ends his MSRP session (the BYE ends the
// session: closing the connection first would look like a failure to stox,
// which would then hang up itself).
func (c *bobChat) hangUp(ctx context.Context) error {
	c.a.chat.forget(c)
	c.mu.Lock()
	c.ended = true // stox closes the connection after the BYE: no news
	out, in := c.out, c.in
	c.mu.Unlock()
	defer c.closeMSRP()
	var err error
	switch {
	case in != nil:
		err = in.Bye(ctx)
	case out != nil:
		err = out.Bye(ctx)
	}
	if err != nil {
		return fmt.Errorf("BYE: %w", err)
	}
	c.a.con.printf("sip", "SIP bob -> stox: BYE (call %s): 200 OK", c.callID)
	return nil
}

// bobSDP is bob's SDP offer or answer for an MSRP session with his URL local.
func bobSDP(local msrp.URL, answer bool, types []string) ([]byte, error) {
	m := sdp.MSRPMedia{
		Addr: chatHost, Port: local.Port, Path: []string{local.String()},
		AcceptTypes: types, AcceptWrappedTypes: bobWrappedTypes,
	}
	o := sdp.Origin{Username: "bob", SessionID: uint64(time.Now().UnixNano()), SessionVersion: 1}
	if answer {
		return sdp.BuildAnswer(o, m)
	}
	return sdp.BuildOffer(o, m)
}

// call: bob (from) starts a chat with the XMPP user to: an INVITE with his
// MSRP offer straight to stox; on 200 he ACKs and connects to stox's path
// (he is the offerer: the active side).
func (a *agent) call(ctx context.Context, from, to string) (*bobChat, error) {
	var fromURI, toURI sip.Uri
	if err := sip.ParseUri(from, &fromURI); err != nil {
		return nil, fmt.Errorf("from %q: %w", from, err)
	}
	if err := sip.ParseUri(to, &toURI); err != nil {
		return nil, fmt.Errorf("to %q: %w", to, err)
	}
	local := a.chat.lis.URL(chatHost)
	offer, err := bobSDP(local, false, bobAcceptTypes)
	if err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.INVITE, toURI)
	fh := &sip.FromHeader{Address: fromURI, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: toURI.Scheme, User: toURI.User, Host: toURI.Host}})
	callID := sip.CallIDHeader("bob-" + sip.GenerateTagN(12))
	req.AppendHeader(&callID)
	contact := a.chat.dua.ContactHDR.Clone()
	req.AppendHeader(contact)
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody(offer)
	req.SetTransport("UDP")
	req.SetDestination(a.stoxAddr)
	c := &bobChat{a: a, callID: string(callID), peer: to}
	a.con.printf("sip", "SIP bob -> stox: INVITE %s (Call-ID %s), MSRP offer (bob is the offerer, so the active side: he connects):\n%s",
		to, c.callID, indent(string(offer), "    "))

	// Known before the 200 comes: stox's BYE may follow it at once.
	a.chat.mu.Lock()
	a.chat.chats[c.callID] = c
	a.chat.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			a.chat.forget(c)
		}
	}()
	dlg, err := a.chat.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("INVITE: %w", err)
	}
	c.mu.Lock()
	c.out = dlg
	c.mu.Unlock()
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		var re sipgo.ErrDialogResponse
		if errors.As(err, &re) && re.Res != nil {
			a.con.printf("sip", "SIP bob's INVITE: stox answered %d %s", re.Res.StatusCode, re.Res.Reason)
			return nil, fmt.Errorf("stox answered %d %s, want 200", re.Res.StatusCode, re.Res.Reason)
		}
		return nil, fmt.Errorf("INVITE: %w", err)
	}
	res := dlg.InviteResponse
	a.con.printf("sip", "SIP bob's INVITE: stox answered %d %s, MSRP answer:\n%s", res.StatusCode, res.Reason, indent(string(res.Body()), "    "))
	ackErr := dlg.Ack(ctx)
	fail := func(err error) (*bobChat, error) {
		bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = dlg.Bye(bctx)
		return nil, err
	}
	if ackErr != nil {
		return fail(fmt.Errorf("ACK: %w", ackErr))
	}
	answer, err := sdp.ParseMSRP(res.Body())
	if err != nil {
		return fail(fmt.Errorf("stox's SDP answer: %w", err))
	}
	remote, err := msrp.ParsePath(strings.Join(answer.Path, " "))
	if err != nil {
		return fail(fmt.Errorf("stox's a=path: %w", err))
	}
	ms, err := msrp.Dial(ctx, local, remote, msrp.WithHandler(c.handler()), msrp.WithLogger(sipLog))
	if err != nil {
		return fail(fmt.Errorf("connecting to stox's MSRP path %s: %w", msrp.FormatPath(remote), err))
	}
	c.mu.Lock()
	c.ms = ms
	c.mu.Unlock()
	ok = true
	a.con.printf("msrp", "SIP bob connected to stox's MSRP path %s (from %s); the session is up", msrp.FormatPath(remote), local)
	return c, nil
}

// onInvite answers INVITEs the agent gets: stox's for bob (an XMPP user
// starts a chat) get bob's MSRP answer; others are refused.
func (a *agent) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	ruri := req.Recipient
	from := ""
	if f := req.From(); f != nil {
		from = f.Address.String()
	}
	refuse := func(code int, reason, why string) {
		a.con.printf("sip", "INVITE %s from %s: %s -> %d %s", ruri.String(), from, why, code, reason)
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	}
	if to := req.To(); to != nil {
		if tag, _ := to.Params.Get("tag"); tag != "" {
			refuse(488, "Not Acceptable Here", "a re-INVITE (bob does not renegotiate)")
			return
		}
	}
	if ruri.User != "bob" {
		a.mu.Lock()
		_, registered := a.phones[strings.ToLower(ruri.User+"@"+ruri.Host)]
		a.mu.Unlock()
		if registered {
			// 488 makes stox fall back to page mode (MESSAGE), which the
			// agent relays to the phone.
			refuse(488, "Not Acceptable Here", "the agent relays no INVITE to registered phones")
		} else {
			refuse(404, "Not Found", "no such SIP user here")
		}
		return
	}
	offer, err := sdp.ParseMSRP(req.Body())
	if err != nil {
		refuse(488, "Not Acceptable Here", fmt.Sprintf("no MSRP offer (%v)", err))
		return
	}
	types, err := sdp.Negotiate(offer, bobAcceptTypes)
	if err != nil {
		refuse(488, "Not Acceptable Here", "no common content type")
		return
	}
	remote, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		refuse(488, "Not Acceptable Here", fmt.Sprintf("bad a=path (%v)", err))
		return
	}
	callID := ""
	if h := req.CallID(); h != nil {
		callID = string(*h)
	}
	c := &bobChat{a: a, callID: callID, peer: from}
	local := a.chat.lis.URL(chatHost)
	ms, err := a.chat.lis.Expect(local, remote, msrp.WithHandler(c.handler()), msrp.WithLogger(sipLog))
	if err != nil {
		refuse(500, "Server Internal Error", fmt.Sprintf("MSRP: %v", err))
		return
	}
	c.mu.Lock()
	c.ms = ms
	c.mu.Unlock()
	answer, err := bobSDP(local, true, types)
	if err != nil {
		_ = ms.Close()
		refuse(500, "Server Internal Error", fmt.Sprintf("SDP: %v", err))
		return
	}
	dlg, err := a.chat.dua.ReadInvite(req, tx)
	if err != nil {
		_ = ms.Close()
		refuse(400, "Bad Request", fmt.Sprintf("dialog: %v", err))
		return
	}
	c.mu.Lock()
	c.in = dlg
	c.mu.Unlock()
	a.con.printf("sip", "SIP %s@%s got INVITE from %s (Call-ID %s), MSRP offer:\n%s", ruri.User, ruri.Host, from, callID, indent(string(req.Body()), "    "))
	a.chat.mu.Lock()
	a.chat.chats[callID] = c
	a.chat.mu.Unlock()
	a.con.printf("sip", "SIP bob answers 200 OK with his MSRP path (he is the answerer, so the passive side: stox connects):\n%s", indent(string(answer), "    "))
	// RespondSDP returns once stox ACKed the 200.
	if err := dlg.RespondSDP(answer); err != nil {
		a.chat.forget(c)
		c.closeMSRP()
		a.con.printf("sip", "SIP bob's 200 OK to the INVITE (Call-ID %s): %v", callID, err)
		return
	}
	select {
	case <-ms.Bound():
	case <-ms.Done():
	case <-time.After(10 * time.Second):
	case <-a.ctx.Done():
	}
	select {
	case <-ms.Bound():
		a.con.printf("msrp", "stox connected to bob's MSRP path %s; the session is up", local)
		a.chat.emit(chatEvent{kind: evUp, callID: callID, peer: from, chat: c})
	default:
		if a.ctx.Err() == nil {
			a.con.printf("msrp", "stox did not connect to bob's MSRP path %s", local)
		}
	}
}

// onAck confirms a dialog in which bob answered an INVITE.
func (a *agent) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if h := req.CallID(); h != nil {
		if c := a.chat.get(string(*h)); c != nil {
			if _, in := c.dialogs(); in != nil {
				_ = in.ReadAck(req, tx)
			}
		}
	}
}

// onBye: stox hangs up one of bob's chats.
func (a *agent) onBye(req *sip.Request, tx sip.ServerTransaction) {
	var c *bobChat
	if h := req.CallID(); h != nil {
		c = a.chat.get(string(*h))
	}
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	a.chat.forget(c)
	c.closeMSRP()
	out, in := c.dialogs()
	var err error
	switch {
	case in != nil:
		err = in.ReadBye(req, tx)
	case out != nil:
		err = out.ReadBye(req, tx)
	default:
		err = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	if err != nil {
		a.con.printf("sip", "SIP bob got BYE (call %s): %v", c.callID, err)
		return
	}
	a.con.printf("sip", "SIP bob got BYE from stox (call %s with %s) -> 200 OK; his MSRP session is closed", c.callID, c.peer)
	a.chat.emit(chatEvent{kind: evBye, callID: c.callID, peer: c.peer, chat: c})
}
