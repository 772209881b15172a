//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
)

// The presence steps of the script (RFC 8048 through stox): alice watches
// the SIP user bob, whose presence agent is the demo's SIP agent, and bob
// (the agent as a SIP watcher) watches alice.

const (
	nsRoster   = "jabber:iq:roster"
	bobDevice  = "phone" // the resource stox makes of bob's tuple ID-phone
	watchLease = 600     // Expires of bob's SUBSCRIBE to alice
)

// stepXMPPWatchesSIP: alice subscribes to bob; stox subscribes to bob's
// presence agent; bob goes online, then offline.
func (d *demo) stepXMPPWatchesSIP(ctx context.Context) (string, error) {
	bob := "bob@" + component
	bobRes := bob + "/" + bobDevice
	d.con.printf("xmpp", "XMPP alice -> %s: <presence type='subscribe'/> (stox SUBSCRIBEs to bob's presence agent)", bob)
	if err := d.alice.Send(`<presence to='` + bob + `' type='subscribe'/>`); err != nil {
		return "", err
	}
	if err := d.awaitAlicePresence(ctx,
		cond{"bob in alice's roster with subscription 'to' (stox's <subscribed/>, once bob's presence agent answered)", rosterItem(bob, "to", "both")},
		cond{"bob's first presence (offline)", presenceFrom(bobRes, "unavailable", "")},
	); err != nil {
		return "", err
	}

	d.say("bob comes online: his presence agent NOTIFYs stox")
	if n := d.agent.setBob(true, "at my desk"); n == 0 {
		return "", errors.New("no watcher of bob answered his NOTIFY with 200")
	}
	if err := d.awaitAlicePresence(ctx, cond{"bob available with status \"at my desk\"", presenceFrom(bobRes, "", "at my desk")}); err != nil {
		return "", err
	}

	d.say("bob goes offline")
	if n := d.agent.setBob(false, "gone home"); n == 0 {
		return "", errors.New("no watcher of bob answered his NOTIFY with 200")
	}
	if err := d.awaitAlicePresence(ctx, cond{"bob unavailable with status \"gone home\"", presenceFrom(bobRes, "unavailable", "gone home")}); err != nil {
		return "", err
	}
	return "the XMPP user saw the SIP user come online and go offline", nil
}

// stepSIPWatchesXMPP: bob subscribes to alice through stox; alice approves;
// she goes offline and comes back.
func (d *demo) stepSIPWatchesXMPP(ctx context.Context) (string, error) {
	bob := "bob@" + component
	aliceURI := "sip:alice@" + xmppDomain
	d.con.printf("sip", "SIP bob -> stox: SUBSCRIBE %s (Event: presence, Expires: %d)", aliceURI, watchLease)
	res, err := d.agent.watch(ctx, "sip:"+bob, aliceURI, watchLease)
	if err != nil {
		return "", fmt.Errorf("SUBSCRIBE to stox: %w", err)
	}
	d.con.printf("sip", "SIP bob's SUBSCRIBE to %s: stox answered %d %s, Expires %s",
		aliceURI, res.StatusCode, res.Reason, headerValue(res.GetHeader("Expires")))
	if res.StatusCode != 200 {
		return "", fmt.Errorf("stox answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if _, err := d.awaitNotify(ctx, "the first NOTIFY, pending (alice has not approved yet)", func(n watchNotify) bool {
		return n.stateName() == "pending"
	}); err != nil {
		return "", err
	}
	if err := d.awaitAlicePresence(ctx, cond{"a subscription request from " + bob, presenceFrom(bob, "subscribe", "")}); err != nil {
		return "", err
	}

	d.con.printf("xmpp", "XMPP alice approves: <presence to='%s' type='subscribed'/>", bob)
	if err := d.alice.Send(`<presence to='` + bob + `' type='subscribed'/>`); err != nil {
		return "", err
	}
	if _, err := d.awaitNotify(ctx, "an active NOTIFY with alice open", func(n watchNotify) bool {
		return n.stateName() == "active" && hasBasic(n, "open", "")
	}); err != nil {
		return "", err
	}

	d.con.printf("xmpp", "XMPP alice goes offline: <presence type='unavailable'/>")
	if err := d.alice.Send(`<presence type='unavailable'/>`); err != nil {
		return "", err
	}
	if _, err := d.awaitNotify(ctx, "a NOTIFY with alice closed", func(n watchNotify) bool {
		return n.stateName() == "active" && hasBasic(n, "closed", "") && !hasBasic(n, "open", "")
	}); err != nil {
		return "", err
	}

	const back = "back at the demo"
	d.con.printf("xmpp", "XMPP alice comes back online: <presence><status>%s</status></presence>", back)
	if err := d.alice.Send(`<presence><status>` + back + `</status></presence>`); err != nil {
		return "", err
	}
	if _, err := d.awaitNotify(ctx, fmt.Sprintf("a NOTIFY with alice open, note %q", back), func(n watchNotify) bool {
		return n.stateName() == "active" && hasBasic(n, "open", back)
	}); err != nil {
		return "", err
	}
	return "the SIP watcher saw the XMPP user come online, go offline and come back", nil
}

// cond is one thing alice must get.
type cond struct {
	what  string
	match func(*testbed.Stanza) bool
}

// awaitAlicePresence waits until alice got, in any order, a presence or
// roster push matching each of conds.
func (d *demo) awaitAlicePresence(ctx context.Context, conds ...cond) error {
	left := append([]cond(nil), conds...)
	for len(left) > 0 {
		select {
		case s := <-d.alicePres:
			for i, c := range left {
				if c.match(s) {
					left = append(left[:i], left[i+1:]...)
					break
				}
			}
			if len(left) == 0 {
				d.flushLogs()
			}
		case <-d.readDone:
			return errors.New("alice's stream ended")
		case <-ctx.Done():
			var miss []string
			for _, c := range left {
				miss = append(miss, c.what)
			}
			return fmt.Errorf("alice never got %s: %w", strings.Join(miss, ", nor "), ctx.Err())
		}
	}
	return nil
}

// awaitNotify waits for a NOTIFY of bob's subscriptions matching match.
func (d *demo) awaitNotify(ctx context.Context, what string, match func(watchNotify) bool) (watchNotify, error) {
	for {
		select {
		case n := <-d.agent.pres.notifies:
			if match(n) {
				d.flushLogs()
				return n, nil
			}
		case <-ctx.Done():
			return watchNotify{}, fmt.Errorf("the SIP watcher never got %s: %w", what, ctx.Err())
		}
	}
}

// hasBasic reports whether a tuple of n has this basic status (and, unless
// note is "", this note).
func hasBasic(n watchNotify, basic, note string) bool {
	for _, t := range n.tuples {
		if t.Basic == basic && (note == "" || t.Note == note) {
			return true
		}
	}
	return false
}

// presenceFrom matches a presence stanza of type typ ("" is available) from
// the JID from (a full JID, or a bare one: any of its resources) with, unless
// status is "", that status.
func presenceFrom(from, typ, status string) func(*testbed.Stanza) bool {
	return func(s *testbed.Stanza) bool {
		if s.Name() != "presence" || s.Attr("type") != typ {
			return false
		}
		f := s.Attr("from")
		if f != from && !(strings.IndexByte(from, '/') < 0 && strings.HasPrefix(f, from+"/")) {
			return false
		}
		return status == "" || s.Text(testbed.NSClient, "status") == status
	}
}

// rosterItem matches a roster push with jid in one of the subscription
// states.
func rosterItem(jid string, subs ...string) func(*testbed.Stanza) bool {
	return func(s *testbed.Stanza) bool {
		if s.Name() != "iq" {
			return false
		}
		for _, it := range s.El.FindElements("./query/item") {
			if it.SelectAttrValue("jid", "") != jid {
				continue
			}
			for _, sub := range subs {
				if it.SelectAttrValue("subscription", "") == sub {
					return true
				}
			}
		}
		return false
	}
}

// describePresence is a presence stanza in a few words: its type, show and
// status.
func describePresence(s *testbed.Stanza) string {
	var b strings.Builder
	b.WriteString(typeOr(s.Attr("type"), "available"))
	if show := s.Text(testbed.NSClient, "show"); show != "" {
		b.WriteString(" (" + show + ")")
	}
	if st := s.Text(testbed.NSClient, "status"); st != "" {
		fmt.Fprintf(&b, " %q", st)
	}
	return b.String()
}

// rosterPush handles a roster push to alice: it prints the items and
// acknowledges it (RFC 6121 §2.1.6); false when s is not one.
func (d *demo) rosterPush(s *testbed.Stanza) bool {
	if s.Attr("type") != "set" || s.Child(nsRoster, "query") == nil {
		return false
	}
	for _, it := range s.El.FindElements("./query/item") {
		line := fmt.Sprintf("alice's roster (pushed by Prosody): %s subscription=%s", it.SelectAttrValue("jid", ""), it.SelectAttrValue("subscription", "none"))
		if ask := it.SelectAttrValue("ask", ""); ask != "" {
			line += " ask=" + ask
		}
		d.con.printf("xmpp", "%s", line)
	}
	_ = d.alice.Send(fmt.Sprintf(`<iq type='result' id='%s'/>`, xmlEscape(s.Attr("id"))))
	return true
}

// endWatches makes bob unsubscribe from alice before stox stops and
// prints the final NOTIFY (RFC 6665 §4.1.2.3).
func (d *demo) endWatches() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if d.agent.unwatch(ctx) == 0 {
		return
	}
	_, _ = d.awaitNotify(ctx, "the final NOTIFY", func(n watchNotify) bool { return n.stateName() == "terminated" })
}
