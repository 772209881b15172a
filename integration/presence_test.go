//go:build unix

package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
)

// Presence both ways against real peers (CHECKLIST section 4): Kamailio is
// the SIP presence server for the SIP users of sip.example.test and the
// proxy in front of stox; Prosody keeps the XMPP users' rosters.

// presenceRig is a rig whose outbound proxy is Kamailio, which serves SIP
// presence for the component's SIP domain and forwards example.test to
// stox (record-routed), with a store so that stox can be restarted.
type presenceRig struct {
	*rig
	kam *testbed.Kamailio
}

func newPresenceRig(t *testing.T) *presenceRig {
	t.Helper()
	testbed.Need(t, "kamailio", "sipp", "prosody", "prosodyctl")
	testbed.NeedKamailioModules(t, "presence", "presence_xml", "db_text")
	ctx := timeoutCtx(t, 4*time.Minute)
	sipPort := testbed.FreePort(t, testbed.TCPUDP)
	k, err := testbed.StartKamailio(ctx, testbed.KamailioConfig{
		PresenceDomain: component,
		Forward:        map[string]string{xmppDomain: fmt.Sprintf("127.0.0.1:%d", sipPort)},
	})
	if err != nil {
		t.Fatalf("kamailio: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- kamailio ---\n%s", k.Logs())
		}
		k.Close()
	})
	store := filepath.Join(t.TempDir(), "stox.db")
	r := newRig(t,
		withProxy("sip:"+k.SIPAddr+";transport=udp"),
		withConfig(fmt.Sprintf(`
[store]
path = %q

[presence]
notify_interval = "300ms"
retry_min = "500ms"
retry_max = "2s"
`, store)),
		withSIPPort(sipPort),
	)
	return &presenceRig{rig: r, kam: k}
}

func (r *presenceRig) publish(p testbed.Publish) string {
	r.t.Helper()
	args, err := p.Args()
	if err != nil {
		r.t.Fatal(err)
	}
	s, err := testbed.RunSIPp(r.ctx, r.t.TempDir(), append(args, "-t", "u1", r.kam.SIPAddr)...)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		r.t.Fatalf("publish: %v\n%s", err, s.Stats())
	}
	msgs, err := s.Received()
	if err != nil {
		r.t.Fatal(err)
	}
	return testbed.PublishETag(msgs)
}

func (r *presenceRig) watcher(s testbed.Subscribe) *testbed.Watcher {
	r.t.Helper()
	w, err := testbed.StartWatcher(r.ctx, r.t.TempDir(), s, r.kam.SIPAddr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = w.Stop() })
	resp, err := w.Response(r.ctx)
	if err != nil {
		r.t.Fatalf("watcher: %v%s", err, r.logs())
	}
	if resp.StatusCode() != 200 {
		r.t.Fatalf("SUBSCRIBE answered %s, want 200 (PRES-21)%s", resp.StartLine, r.logs())
	}
	if resp.Header("Expires") == "" {
		r.t.Errorf("200 to SUBSCRIBE without Expires (PRES-21)")
	}
	return w
}

func (r *presenceRig) notifies(w *testbed.Watcher, n int) []*testbed.SIPMessage {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	got, err := w.WaitNotifies(ctx, n)
	if err != nil {
		r.t.Fatalf("%v%s", err, r.logs())
	}
	return got
}

// presenceFrom matches a presence stanza of a type from a JID prefix.
func presenceFrom(from, typ string) func(*testbed.Stanza) bool {
	return func(s *testbed.Stanza) bool {
		return s.Name() == "presence" && strings.HasPrefix(s.Attr("from"), from) && s.Attr("type") == typ
	}
}

// checkRoster waits until contact has the subscription state want in
// alice's roster.
func (r *presenceRig) checkRoster(contact, want string) {
	r.t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := r.alice.IQ(r.ctx, `<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`)
		if err != nil {
			r.t.Fatalf("roster: %v", err)
		}
		last = res.Raw
		for _, it := range res.El.FindElements("./query/item") {
			if it.SelectAttrValue("jid", "") == contact && it.SelectAttrValue("subscription", "") == want {
				return
			}
		}
	}
	r.t.Errorf("roster subscription of %s is not %q: %s%s", contact, want, last, r.logs())
}

// TestPresenceXMPPWatchesSIP: an XMPP user subscribes to a SIP user whose
// presence Kamailio holds (PRES-10..PRES-13, PRES-17, CHECKLIST 4.5); the
// subscription survives a restart of stox (persistence) with no spurious
// unsubscribe, and stox retries with backoff while Kamailio is down.
func TestPresenceXMPPWatchesSIP(t *testing.T) {
	r := newPresenceRig(t)
	bob := "bob@" + component
	etag := r.publish(testbed.Publish{RequestURI: "sip:" + bob, TupleID: "ID-desk", Note: "at my desk", Expires: 3600})
	if etag == "" {
		t.Fatal("PUBLISH got no SIP-ETag")
	}

	if err := r.alice.Send(fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, bob)); err != nil {
		t.Fatal(err)
	}
	p := r.expect(r.alice, "bob's presence (PRES-13c)", presenceFrom(bob+"/desk", ""))
	// Prosody turns the subscribed stox sent into a roster change rather
	// than delivering the stanza (PRES-13b).
	r.checkRoster(bob, "to")
	if got := p.Text(testbed.NSClient, "status"); got != "at my desk" {
		t.Errorf("status %q, want the PIDF note (CHECKLIST 4.5)%s", got, p.Raw)
	}

	// Bob goes away: the same dialog carries the change.
	etag = r.publish(testbed.Publish{RequestURI: "sip:" + bob, TupleID: "ID-desk", ETag: etag, Basic: "closed", Note: "gone home"})
	r.expect(r.alice, "bob unavailable", presenceFrom(bob+"/desk", "unavailable"))

	// Restart stox: the subscription is restored from the store and goes
	// on in the same SIP dialog.
	if err := r.stox.Stop(); err != nil {
		t.Fatalf("stox stop: %v%s", err, r.logs())
	}
	r.startStox()
	if err := r.stox.WaitReady(r.ctx, r.alice, component); err != nil {
		t.Fatalf("stox not ready after restart: %v%s", err, r.logs())
	}
	etag = r.publish(testbed.Publish{RequestURI: "sip:" + bob, TupleID: "ID-desk", ETag: etag, Basic: "open", Note: "back"})
	p = r.expect(r.alice, "bob back after stox's restart", presenceFrom(bob+"/desk", ""))
	if got := p.Text(testbed.NSClient, "status"); got != "back" {
		t.Errorf("status after restart %q", got)
	}
	for _, s := range r.alice.Skipped() {
		if s.Name() == "presence" && s.Attr("type") == "unsubscribed" {
			t.Errorf("spurious unsubscribed after the restart: %s", s.Raw)
		}
	}

	// A probe (alice's second resource comes online) is answered by the
	// gateway with what it knows (PRES-32a).
	laptop := r.login("alice", "alicepw", "laptop")
	r.expect(laptop, "bob's presence on probe", presenceFrom(bob+"/desk", ""))

	// Alice unsubscribes: SUBSCRIBE Expires 0 in the dialog, then
	// unsubscribed from bob (PRES-17).
	stanzas := r.metric(`stox_presence_stanzas_total`)
	if err := r.alice.Send(fmt.Sprintf(`<presence to='%s' type='unsubscribe'/>`, bob)); err != nil {
		t.Fatal(err)
	}
	r.checkRoster(bob, "none")
	// Prosody sets the roster to none on alice's unsubscribe by itself, and
	// does not deliver stox's unsubscribed when nothing changes. Wait for
	// stox to have sent it (bob's unavailable, then unsubscribed): sent
	// after her next subscribe below, it would cancel that at Prosody.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		before, _ := strconv.Atoi(stanzas)
		if now, _ := strconv.Atoi(r.metric(`stox_presence_stanzas_total`)); now >= before+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stox sent no unsubscribed%s", r.logs())
		}
	}

	// With Kamailio gone, a new subscription fails (Timer F) and is
	// retried with backoff until Kamailio is back (PRES-15).
	r.kam.Kill()
	if err := r.alice.Send(fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, bob)); err != nil {
		t.Fatal(err)
	}
	failed := `stox_presence_sip_requests_total{method="SUBSCRIBE",result="failed"}`
	for deadline := time.Now().Add(20 * time.Second); r.metric(failed) == "0"; {
		if time.Now().After(deadline) {
			t.Fatalf("no failed SUBSCRIBE while Kamailio was down%s", r.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := r.kam.Restart(r.ctx); err != nil {
		t.Fatalf("kamailio restart: %v", err)
	}
	r.publish(testbed.Publish{RequestURI: "sip:" + bob, TupleID: "ID-desk", Note: "after the outage", Expires: 3600})
	r.expect(r.alice, "bob after the outage", func(s *testbed.Stanza) bool {
		return presenceFrom(bob+"/desk", "")(s) && s.Text(testbed.NSClient, "status") == "after the outage"
	})
	r.checkRoster(bob, "to")
}

// TestPresenceSIPWatchesXMPP: a SIP watcher subscribes through Kamailio to
// an XMPP user (PRES-20..PRES-29, CHECKLIST 4.4): 200, a pending NOTIFY, a
// subscribe to the XMPP user, active once she approves, her presence with
// one tuple per resource, and the final NOTIFY on unsubscribe.
func TestPresenceSIPWatchesXMPP(t *testing.T) {
	r := newPresenceRig(t)
	dave := "dave@" + component
	w := r.watcher(testbed.Subscribe{RequestURI: "sip:alice@" + xmppDomain, From: "sip:" + dave, Expires: 600, Unsubscribe: true})
	first := r.notifies(w, 1)[0]
	if got := first.Header("Subscription-State"); !strings.HasPrefix(got, "pending;expires=") {
		t.Errorf("first NOTIFY Subscription-State %q, want pending (PRES-22a)", got)
	}
	if first.Header("Event") != "presence" || first.Body != "" {
		t.Errorf("first NOTIFY: Event %q, body %q", first.Header("Event"), first.Body)
	}

	r.expect(r.alice, "subscribe from dave (PRES-23)", presenceFrom(dave, "subscribe"))
	if err := r.alice.Send(fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, dave)); err != nil {
		t.Fatal(err)
	}
	// Active, then alice's presence (Prosody sends it once dave may see it).
	var active *testbed.SIPMessage
	for n := 2; active == nil; n++ {
		for _, m := range r.notifies(w, n) {
			if strings.HasPrefix(m.Header("Subscription-State"), "active") && strings.Contains(m.Body, `id="ID-phone"`) {
				active = m
			}
		}
	}
	for _, want := range []string{`entity="pres:alice@example.test"`, "<basic>open</basic>", "gr=phone"} {
		if !strings.Contains(active.Body, want) {
			t.Errorf("PIDF lacks %s:\n%s", want, active.Body)
		}
	}
	if got := active.Header("Content-Type"); got != "application/pidf+xml" {
		t.Errorf("NOTIFY Content-Type %q", got)
	}

	// A second resource with another priority: both tuples in one
	// document (PRES-29).
	laptop, err := testbed.Dial(r.ctx, r.prosody.C2SAddr, "alice@"+xmppDomain, "alicepw", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { laptop.Close() })
	if err := laptop.Send(`<presence><show>dnd</show><status>busy</status><priority>5</priority></presence>`); err != nil {
		t.Fatal(err)
	}
	var both *testbed.SIPMessage
	for n := len(r.notifies(w, 1)) + 1; both == nil; n++ {
		got := r.notifies(w, n)
		if m := got[len(got)-1]; strings.Contains(m.Body, `id="ID-laptop"`) && strings.Contains(m.Body, `id="ID-phone"`) {
			both = m
		}
	}
	if !strings.Contains(both.Body, "busy") {
		t.Errorf("PIDF lacks the laptop's status:\n%s", both.Body)
	}

	// The watcher unsubscribes: a final NOTIFY, terminated.
	before := len(r.notifies(w, 1))
	if err := w.End(r.ctx); err != nil {
		t.Fatalf("watcher end: %v%s", err, r.logs())
	}
	all := r.notifies(w, before+1)
	if got := all[len(all)-1].Header("Subscription-State"); !strings.HasPrefix(got, "terminated") {
		t.Errorf("final NOTIFY Subscription-State %q (PRES-26)", got)
	}
	// PRES-26b: alice sees dave unavailable; no unsubscribe (RFC 8048).
	r.expect(r.alice, "dave unavailable", presenceFrom(dave, "unavailable"))
}

// TestPresenceBadInput: refusals on the SIP side (PRES-20, RFC 6665).
func TestPresenceBadInput(t *testing.T) {
	r := newRig(t)
	sub := func(event, extra string) string {
		return "SUBSCRIBE sip:alice@" + xmppDomain + " SIP/2.0\r\n" +
			"Via: SIP/2.0/{transport} {local};branch=z9hG4bK-sub" + event + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:dave@" + component + ">;tag=w1\r\nTo: <sip:alice@" + xmppDomain + ">\r\n" +
			"Call-ID: bad-" + event + "\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:dave@{local}>\r\n" +
			"Event: " + event + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
	}
	if res := r.sendRaw("udp", sub("dialog", "")); res.StatusCode() != 489 || res.Header("Allow-Events") != "presence" {
		t.Errorf("unknown event: %s Allow-Events %q", res.StartLine, res.Header("Allow-Events"))
	}
	if res := r.sendRaw("udp", sub("presence", "Accept: text/plain\r\n")); res.StatusCode() != 406 {
		t.Errorf("Accept without PIDF: %s", res.StartLine)
	}
	if res := r.sendRaw("udp", sub("presence", "Expires: 5\r\n")); res.StatusCode() != 423 || res.Header("Min-Expires") != "60" {
		t.Errorf("short Expires: %s", res.StartLine)
	}
	notify := "NOTIFY sip:alice@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/{transport} {local};branch=z9hG4bK-n1\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:bob@" + component + ">;tag=n1\r\nTo: <sip:alice@" + xmppDomain + ">;tag=nope\r\n" +
		"Call-ID: no-such-dialog\r\nCSeq: 1 NOTIFY\r\nContact: <sip:bob@{local}>\r\n" +
		"Event: presence\r\nSubscription-State: active;expires=60\r\nContent-Length: 0\r\n\r\n"
	if res := r.sendRaw("udp", notify); res.StatusCode() != 481 {
		t.Errorf("NOTIFY for an unknown dialog: %s", res.StartLine)
	}
	// From an untrusted source nothing is subscribed: 403 comes first.
	untrusted := newRig(t, withTrusted("10.0.0.0/8"))
	if res := untrusted.sendRaw("udp", sub("presence", "")); res.StatusCode() != 403 {
		t.Errorf("untrusted SUBSCRIBE: %s", res.StartLine)
	}
}
