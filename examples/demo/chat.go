//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stox-gw/stox/integration/testbed"
)

// The chat steps of the script: one-to-one MSRP sessions through stox (RFC
// 7573), one started by the SIP user bob, one by the XMPP user alice. stox
// runs with chat.mode = "auto": an XMPP chat message opens a session only
// to a SIP user known to take MSRP (one that started a session with stox or
// answered one of its INVITEs); everyone else gets page mode (MESSAGE), as
// in the first steps, which therefore come first.

const nsChatStates = "http://jabber.org/protocol/chatstates"

var chatStates = []string{"active", "composing", "paused", "inactive", "gone"}

// stepSIPStartsChat: bob INVITEs alice with an MSRP offer and connects to
// stox's path; his message reaches alice with a <thread/>; her chat state
// and reply come back over MSRP; her <gone/> makes stox hang up.
func (d *demo) stepSIPStartsChat(ctx context.Context) (string, error) {
	bob := "bob@" + component
	d.say(`stox runs with chat.mode = "auto": chat messages from XMPP open an MSRP session only to SIP`)
	d.say("users known to take one (so far none: step 1 went as a page-mode MESSAGE); bob starts one now")
	c, err := d.agent.call(ctx, "sip:"+bob, "sip:alice@"+xmppDomain)
	if err != nil {
		return "", err
	}
	d.flushLogs()

	const hello = "hello over MSRP"
	if err := c.send(ctx, hello); err != nil {
		return "", fmt.Errorf("bob's MSRP SEND %q: %w", hello, err)
	}
	s, err := d.awaitAlice(ctx, func(s *testbed.Stanza) bool { return s.Body() == hello })
	if err != nil {
		return "", fmt.Errorf("alice never got %q: %w", hello, err)
	}
	if from, typ, th := s.Attr("from"), s.Attr("type"), s.Text(testbed.NSClient, "thread"); from != bob || typ != "chat" || th != c.callID {
		return "", fmt.Errorf("alice got it from %q, type %q, thread %q; want from %s, type chat, thread %s (the Call-ID)", from, typ, th, bob, c.callID)
	}

	d.con.printf("xmpp", "XMPP alice -> %s: <composing/> (she types; stox sends isComposing over MSRP)", bob)
	if err := d.alice.Send(fmt.Sprintf(`<message to='%s' type='chat'><composing xmlns='%s'/><thread>%s</thread></message>`,
		bob, nsChatStates, xmlEscape(c.callID))); err != nil {
		return "", err
	}
	if _, err := d.awaitChat(ctx, "an isComposing document with state active", func(ev chatEvent) bool {
		return ev.kind == evComposing && ev.callID == c.callID && ev.text == "active"
	}); err != nil {
		return "", err
	}

	const reply = "hi bob, alice here: your MSRP chat reached me"
	d.con.printf("xmpp", "XMPP alice -> %s: %q (type chat, same thread)", bob, reply)
	if err := d.alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='chat-1'><body>%s</body><active xmlns='%s'/><thread>%s</thread></message>`,
		bob, xmlEscape(reply), nsChatStates, xmlEscape(c.callID))); err != nil {
		return "", err
	}
	if _, err := d.awaitChat(ctx, fmt.Sprintf("alice's reply %q over MSRP", reply), func(ev chatEvent) bool {
		return ev.kind == evText && ev.callID == c.callID && ev.text == reply
	}); err != nil {
		return "", err
	}

	d.con.printf("xmpp", "XMPP alice -> %s: <gone/> (she closes the chat; stox hangs up)", bob)
	if err := d.alice.Send(fmt.Sprintf(`<message to='%s' type='chat'><gone xmlns='%s'/><thread>%s</thread></message>`,
		bob, nsChatStates, xmlEscape(c.callID))); err != nil {
		return "", err
	}
	if _, err := d.awaitChat(ctx, "a BYE from stox", func(ev chatEvent) bool {
		return ev.kind == evBye && ev.callID == c.callID
	}); err != nil {
		return "", err
	}
	return "bob's MSRP chat reached alice (thread = Call-ID); her typing and reply reached bob over MSRP; her <gone/> hung up", nil
}

// stepXMPPStartsChat: alice writes to bob, who is known to take MSRP now;
// stox INVITEs him through the agent and connects to his path; they chat;
// bob hangs up and alice gets <gone/>.
func (d *demo) stepXMPPStartsChat(ctx context.Context) (string, error) {
	bob := "bob@" + component
	const (
		thread = "demo-chat-2"
		hello  = "bob, are you there? (alice starts this chat)"
	)
	d.con.printf("xmpp", "XMPP alice -> %s: %q (type chat, thread %s); bob started an MSRP session before, so stox INVITEs him",
		bob, hello, thread)
	if err := d.alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='chat-2'><body>%s</body><active xmlns='%s'/><thread>%s</thread></message>`,
		bob, xmlEscape(hello), nsChatStates, thread)); err != nil {
		return "", err
	}
	up, err := d.awaitChat(ctx, "stox's INVITE and MSRP connection", func(ev chatEvent) bool { return ev.kind == evUp })
	if err != nil {
		return "", err
	}
	c := up.chat
	if !strings.HasPrefix(up.peer, "sip:alice@"+xmppDomain) {
		return "", fmt.Errorf("stox's INVITE came from %s, want sip:alice@%s", up.peer, xmppDomain)
	}
	if c.callID != thread {
		return "", fmt.Errorf("stox's INVITE has Call-ID %q, want alice's thread %q", c.callID, thread)
	}
	if _, err := d.awaitChat(ctx, fmt.Sprintf("alice's message %q over MSRP", hello), func(ev chatEvent) bool {
		return ev.kind == evText && ev.callID == c.callID && ev.text == hello
	}); err != nil {
		return "", err
	}

	if err := c.composing(ctx); err != nil {
		return "", fmt.Errorf("bob's isComposing: %w", err)
	}
	if _, err := d.awaitAlice(ctx, func(s *testbed.Stanza) bool {
		return s.Attr("from") == bob && s.Child(nsChatStates, "composing") != nil
	}); err != nil {
		return "", fmt.Errorf("alice never got <composing/> from bob: %w", err)
	}

	const reply = "yes, here over MSRP too"
	if err := c.send(ctx, reply); err != nil {
		return "", fmt.Errorf("bob's MSRP SEND %q: %w", reply, err)
	}
	s, err := d.awaitAlice(ctx, func(s *testbed.Stanza) bool { return s.Body() == reply })
	if err != nil {
		return "", fmt.Errorf("alice never got %q: %w", reply, err)
	}
	if from, th := s.Attr("from"), s.Text(testbed.NSClient, "thread"); from != bob || th != thread {
		return "", fmt.Errorf("alice got it from %q with thread %q, want from %s, thread %s", from, th, bob, thread)
	}

	if err := c.hangUp(ctx); err != nil {
		return "", fmt.Errorf("bob's hang-up: %w", err)
	}
	if _, err := d.awaitAlice(ctx, func(s *testbed.Stanza) bool {
		return s.Attr("from") == bob && s.Child(nsChatStates, "gone") != nil
	}); err != nil {
		return "", fmt.Errorf("alice never got <gone/> after bob's BYE: %w", err)
	}
	return "alice's chat opened an MSRP session to bob (thread = Call-ID); his typing and reply reached her; his BYE ended it with <gone/>", nil
}

// awaitChat waits for an event of bob's chats matching match; events that
// do not match are kept for later calls (a session's first message may
// overtake the news that it is up). A page-mode MESSAGE to bob meanwhile
// means stox did not use MSRP: that fails at once.
func (d *demo) awaitChat(ctx context.Context, what string, match func(chatEvent) bool) (chatEvent, error) {
	for i, ev := range d.chatBacklog {
		if match(ev) {
			d.chatBacklog = append(d.chatBacklog[:i], d.chatBacklog[i+1:]...)
			return ev, nil
		}
	}
	for {
		select {
		case ev := <-d.agent.chat.events:
			if match(ev) {
				d.flushLogs()
				return ev, nil
			}
			if len(d.chatBacklog) >= 64 {
				d.chatBacklog = d.chatBacklog[1:]
			}
			d.chatBacklog = append(d.chatBacklog, ev)
		case m := <-d.agent.bobGot:
			return chatEvent{}, fmt.Errorf("waiting for %s, bob got a page-mode MESSAGE %q from %s: stox did not use the MSRP session", what, m.body, m.from)
		case <-d.readDone:
			return chatEvent{}, errors.New("alice's stream ended")
		case <-ctx.Done():
			return chatEvent{}, fmt.Errorf("SIP bob never got %s: %w", what, ctx.Err())
		}
	}
}

// describeMessage is a message stanza in a few words: its body (or chat
// state), sender, type, thread and chat state.
func describeMessage(s *testbed.Stanza) string {
	state := ""
	for _, st := range chatStates {
		if s.Child(nsChatStates, st) != nil {
			state = "<" + st + "/>"
			break
		}
	}
	var b strings.Builder
	switch {
	case s.Body() != "":
		fmt.Fprintf(&b, "%q", s.Body())
	case state != "":
		b.WriteString(state)
		state = ""
	default:
		b.WriteString("a message without body")
	}
	fmt.Fprintf(&b, " (from %s, type %s", s.Attr("from"), typeOr(s.Attr("type"), "normal"))
	if th := s.Text(testbed.NSClient, "thread"); th != "" {
		fmt.Fprintf(&b, ", thread %s", th)
	}
	if state != "" {
		fmt.Fprintf(&b, ", %s", state)
	}
	b.WriteString(")")
	return b.String()
}
