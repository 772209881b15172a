package sipside

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// notifier is a SubscribeHandler test double that sends the first NOTIFY
// from Then, as the gateway does (RFC 6665 §4.2.1).
type notifier struct {
	t     *testing.T
	ua    *UA
	mu    sync.Mutex
	subs  []*IncomingSubscribe
	dlg   map[string]Dialog // by Call-ID
	sent  chan DialogResult
	code  int
	quiet bool // NOTIFY failures expected
}

func (n *notifier) handle(_ context.Context, s *IncomingSubscribe) SubscribeReply {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.subs = append(n.subs, s)
	if n.code != 0 {
		return SubscribeReply{Code: n.code}
	}
	d, ok := n.dlg[s.Dialog.CallID]
	switch {
	case s.Initial:
		d = s.Dialog
	case !ok || d.RemoteTag != s.Dialog.RemoteTag || d.LocalTag != s.Dialog.LocalTag:
		return SubscribeReply{Code: 481}
	default:
		d.RemoteCSeq = s.Dialog.RemoteCSeq
	}
	n.dlg[d.CallID] = d
	expires := s.Expires
	return SubscribeReply{Code: 202, Then: func() {
		state := fmt.Sprintf("active;expires=%d", expires)
		if expires == 0 {
			state = "terminated;reason=timeout"
		}
		res, err := n.ua.SendInDialog(context.Background(), d, DialogRequest{
			Method: "NOTIFY", SubscriptionState: state,
			ContentType: "application/pidf+xml", Body: []byte("<presence/>"),
		})
		if err != nil && !n.quiet {
			n.t.Errorf("NOTIFY: %v", err)
		}
		n.mu.Lock()
		n.dlg[d.CallID] = res.Dialog
		n.mu.Unlock()
		n.sent <- res
	}}
}

type notifyRecorder struct {
	got  chan *IncomingNotify
	code int
}

func (r *notifyRecorder) handle(_ context.Context, n *IncomingNotify) Reply {
	r.got <- n
	if r.code != 0 {
		return Reply{Code: r.code}
	}
	return Reply{Code: 200}
}

// TestSubscribeNotifyDialog runs a subscription between two UAs: initial
// SUBSCRIBE, 200 (never 202) with Expires and Contact, NOTIFY in the dialog
// after the 200, a refresh in the dialog, and an unsubscribe (PRES-10,
// PRES-21, PRES-22, PRES-17). The Dialog survives a JSON round trip between
// requests, as it does across a restart.
func TestSubscribeNotifyDialog(t *testing.T) {
	checkLeaks(t)
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			n := &notifier{t: t, dlg: map[string]Dialog{}, sent: make(chan DialogResult, 4)}
			n.ua = startUA(t, WithSubscribeHandler(n.handle), WithSubscriptionExpires(60, 1800))
			rec := &notifyRecorder{got: make(chan *IncomingNotify, 4)}
			sub := startUA(t, WithNotifyHandler(rec.handle))
			target := fmt.Sprintf("sip:alice@%s;transport=%s", addr(t, n.ua, tp), tp)

			d := NewDialog("sip:bob@sip.example.test", target, "presence")
			res, err := sub.SendInDialog(ctxTimeout(t, 5*time.Second), d, DialogRequest{Method: "SUBSCRIBE", Expires: 3600, Accept: "application/pidf+xml"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != 200 || res.Expires != 1800 {
				t.Fatalf("initial SUBSCRIBE: %d expires %d, want 200 expires 1800", res.Code, res.Expires)
			}
			d = res.Dialog
			if !d.Established() || d.RemoteTarget == "" || d.LocalCSeq != 1 {
				t.Fatalf("dialog after 200: %+v", d)
			}
			if !strings.Contains(d.RemoteTarget, addr(t, n.ua, tp).String()) {
				t.Errorf("remote target %q is not the notifier's listener", d.RemoteTarget)
			}
			got := <-rec.got
			if got.CallID != d.CallID || got.LocalTag != d.LocalTag || got.RemoteTag != d.RemoteTag {
				t.Errorf("NOTIFY dialog ids %q %q %q, want %q %q %q", got.CallID, got.LocalTag, got.RemoteTag, d.CallID, d.LocalTag, d.RemoteTag)
			}
			if got.SubscriptionState != "active;expires=1800" || got.Package != "presence" || string(got.Body) != "<presence/>" {
				t.Errorf("NOTIFY: state %q package %q body %q", got.SubscriptionState, got.Package, got.Body)
			}
			if r := <-n.sent; r.Code != 200 || r.Dialog.LocalCSeq != 1 {
				t.Errorf("NOTIFY result %d cseq %d", r.Code, r.Dialog.LocalCSeq)
			}

			// Through storage and back.
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var d2 Dialog
			if err := json.Unmarshal(b, &d2); err != nil {
				t.Fatal(err)
			}
			res, err = sub.SendInDialog(ctxTimeout(t, 5*time.Second), d2, DialogRequest{Method: "SUBSCRIBE", Expires: 600, Accept: "application/pidf+xml"})
			if err != nil || res.Code != 200 || res.Expires != 600 || res.Dialog.LocalCSeq != 2 {
				t.Fatalf("refresh: %+v %v", res, err)
			}
			n.mu.Lock()
			s := n.subs[len(n.subs)-1]
			n.mu.Unlock()
			if s.Initial || s.Dialog.RemoteCSeq != 2 {
				t.Errorf("refresh seen as initial=%v cseq %d", s.Initial, s.Dialog.RemoteCSeq)
			}
			<-rec.got
			<-n.sent
			res, err = sub.SendInDialog(ctxTimeout(t, 5*time.Second), res.Dialog, DialogRequest{Method: "SUBSCRIBE", Expires: 0})
			if err != nil || res.Code != 200 || res.Expires != 0 {
				t.Fatalf("unsubscribe: %+v %v", res, err)
			}
			if got := <-rec.got; got.SubscriptionState != "terminated;reason=timeout" {
				t.Errorf("final NOTIFY state %q", got.SubscriptionState)
			}
			<-n.sent

			// A refresh of a dialog the notifier does not know: 481.
			bogus := res.Dialog
			bogus.RemoteTag = "nope"
			res, err = sub.SendInDialog(ctxTimeout(t, 5*time.Second), bogus, DialogRequest{Method: "SUBSCRIBE", Expires: 600})
			if err != nil || res.Code != 481 {
				t.Fatalf("unknown dialog: %+v %v", res, err)
			}
		})
	}
}

// TestSubscribeRefusals checks the answers sipside gives before the handler
// (PRES-20, PRES-21; RFC 6665 §4.2.1).
func TestSubscribeRefusals(t *testing.T) {
	checkLeaks(t)
	n := &notifier{t: t, dlg: map[string]Dialog{}, sent: make(chan DialogResult, 4)}
	n.ua = startUA(t, WithSubscribeHandler(n.handle), WithTransactionTimeout(200*time.Millisecond))
	n.quiet = true
	to := addr(t, n.ua, "udp")
	base := func(extra ...string) []string {
		hs := stdHeaders("UDP", 5999)
		hs = replace(hs, "CSeq:", "CSeq: 1 SUBSCRIBE")
		hs = replace(hs, "Content-Type:", "")
		hs = append(hs, "Contact: <sip:romeo@127.0.0.1:5999>")
		return append(hs, extra...)
	}
	cases := []struct {
		name    string
		headers []string
		code    int
		header  string // a header the response must carry, "name: value"
	}{
		{"no event", base(), 489, "Allow-Events: presence"},
		{"unknown event", base("Event: dialog"), 489, "Allow-Events: presence"},
		{"accept without pidf", base("Event: presence", "Accept: text/plain"), 406, "Accept: application/pidf+xml"},
		{"expires below min", base("Event: presence", "Expires: 10"), 423, "Min-Expires: 60"},
		{"bad expires", base("Event: presence", "Expires: soon"), 400, ""},
		{"no contact", replace(base("Event: presence"), "Contact:", ""), 400, ""},
		{"accept wildcard ok", base("Event: presence;id=4", "Accept: application/*", "Expires: 7200"), 200, "Expires: 3600"},
		{"fetch", base("Event: Presence", "Expires: 0"), 200, "Expires: 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := sendRawUDP(t, to, rawMessage("SUBSCRIBE", "sip:juliet@example.com", c.headers, ""))
			if res == nil {
				t.Fatal("no response")
			}
			if res.StatusCode != c.code {
				t.Fatalf("code %d, want %d", res.StatusCode, c.code)
			}
			if c.header != "" {
				name, value, _ := strings.Cut(c.header, ": ")
				if h := res.GetHeader(name); h == nil || h.Value() != value {
					t.Errorf("%s = %v, want %q", name, h, value)
				}
			}
			if c.code == 200 {
				if tag, _ := res.To().Params.Get("tag"); tag == "" || res.Contact() == nil {
					t.Errorf("2xx without To tag or Contact: %s", res)
				}
				<-n.sent // the NOTIFY to 127.0.0.1:5999 times out or fails; drain
			}
		})
	}
}

// TestNotifyChecks: a NOTIFY without Subscription-State is 400, without a
// To tag 481, unknown events 489; the handler decides the rest.
func TestNotifyChecks(t *testing.T) {
	checkLeaks(t)
	rec := &notifyRecorder{got: make(chan *IncomingNotify, 4), code: 481}
	ua := startUA(t, WithNotifyHandler(rec.handle))
	to := addr(t, ua, "udp")
	base := func(extra ...string) []string {
		hs := stdHeaders("UDP", 5998)
		hs = replace(hs, "CSeq:", "CSeq: 3 NOTIFY")
		hs = replace(hs, "Content-Type:", "")
		hs = replace(hs, "To:", "To: <sip:juliet@example.com>;tag=abc")
		hs = append(hs, "Contact: <sip:romeo@127.0.0.1:5998>")
		return append(hs, extra...)
	}
	for _, c := range []struct {
		name    string
		headers []string
		code    int
	}{
		{"no state", base("Event: presence"), 400},
		{"no to tag", replace(base("Event: presence", "Subscription-State: active"), "To:", "To: <sip:juliet@example.com>"), 481},
		{"no event", base("Subscription-State: active"), 489},
		{"unknown dialog", base("Event: presence", "Subscription-State: active;expires=60"), 481},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := sendRawUDP(t, to, rawMessage("NOTIFY", "sip:juliet@127.0.0.1", c.headers, ""))
			if res == nil || res.StatusCode != c.code {
				t.Fatalf("response %v, want %d", res, c.code)
			}
		})
	}
	if got := <-rec.got; got.SubscriptionState != "active;expires=60" || got.LocalTag != "abc" || got.RemoteTag != "vwxyz" {
		t.Errorf("handler saw %+v", got)
	}
}
