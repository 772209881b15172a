package component

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

// XMPP presence stanzas to SIP users, and the outbound direction (an XMPP
// user watches a SIP user; CHECKLIST 4.2).

// xpres is a presence stanza reduced to what presence needs.
type xpres struct {
	el       *Element
	from, to string // as received
	user     string // bare JID of the XMPP user (from)
	userURI  string // the XMPP user as a SIP URI
	sipJID   string // bare JID of the SIP user (to)
	sipURI   string // the SIP user's AOR
	typ      string
	mp       mapping.Presence // for available/unavailable
	errCond  string           // for type=error
}

// handlePresence takes a presence stanza from the XMPP server. It runs on
// the read loop: it checks the addresses and queues the work.
func (g *Gateway) handlePresence(e *Element) {
	x, err := g.parsePresence(e)
	if err != nil {
		g.log.Info("presence refused", "from", e.AttrValue("from"), "to", e.AttrValue("to"), "type", e.AttrValue("type"), "err", err)
		if e.AttrValue("type") != "error" {
			g.replyError(e, stanzaErrorFor(err))
		}
		return
	}
	if x == nil {
		return // to the component itself: nothing to do
	}
	if g.presence == nil {
		g.log.Info("presence ignored: presence is disabled", "from", x.from, "to", x.to, "type", x.typ)
		if x.typ == "subscribe" || x.typ == "probe" {
			g.replyError(e, mapping.StanzaError{Type: "cancel", Condition: "service-unavailable", Text: "presence is disabled on this gateway"})
		}
		return
	}
	if !g.presence.post(func() { g.presence.onXMPP(x) }) {
		if g.presence.stopping() {
			g.log.Info("presence refused: the gateway is shutting down", "from", x.from, "to", x.to, "type", x.typ)
			g.replyError(e, stanzaErrorFor(ErrClosed))
			return
		}
		g.log.Warn("presence refused: presence queue full", "from", x.from, "to", x.to, "type", x.typ)
		g.replyError(e, mapping.StanzaError{Type: "wait", Condition: "resource-constraint", Text: "too much presence waiting"})
	}
}

// parsePresence checks a presence stanza's addresses (nil, nil: it is for
// the component itself).
func (g *Gateway) parsePresence(e *Element) (*xpres, error) {
	x := &xpres{el: e, from: e.AttrValue("from"), to: e.AttrValue("to"), typ: e.AttrValue("type")}
	local, domain, _ := splitJID(x.to)
	if local == "" && domain == g.cfg.Component {
		return nil, nil
	}
	var err error
	if x.user, x.userURI, x.sipJID, x.sipURI, err = g.xmppParties(x.from, x.to); err != nil {
		return nil, err
	}
	switch x.typ {
	case "", mapping.PresenceUnavailable:
		x.mp = mapping.Presence{From: x.from, To: x.to, Type: x.typ, Lang: e.Lang()}
		ns := e.Space
		x.mp.Show = strings.TrimSpace(e.ChildText(ns, "show"))
		if st := e.Child(ns, "status"); st != nil {
			x.mp.Status = st.Text
			if l := st.Lang(); l != "" {
				x.mp.Lang = l
			}
		}
		if pr := e.Child(ns, "priority"); pr != nil {
			n, err := strconv.Atoi(strings.TrimSpace(pr.Text))
			if err != nil || n < -128 || n > 127 {
				return nil, mapping.ErrBadPresence
			}
			x.mp.Priority, x.mp.HasPriority = n, true
		}
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe":
	case "error":
		if er := e.Child(e.Space, "error"); er != nil {
			for _, c := range er.Children {
				if c.Space == nsStanzas && c.Local != "text" {
					x.errCond = c.Local
				}
			}
		}
	default:
		return nil, mapping.ErrPresenceType
	}
	return x, nil
}

// onXMPP dispatches a presence stanza on the loop (PRES-04: only
// available and unavailable are presence state).
func (p *presenceEngine) onXMPP(x *xpres) {
	k := pairKey{jid: x.user, uri: x.sipURI}
	switch x.typ {
	case "subscribe":
		p.outSubscribe(k, x)
	case "unsubscribe":
		p.outUnsubscribe(k, x)
	case "probe":
		p.outProbe(k, x)
	case "subscribed":
		p.inAuthorized(k, x)
	case "unsubscribed":
		p.inRevoked(k, x, mapping.ReasonRejected)
	case "", mapping.PresenceUnavailable:
		p.inPresence(k, x)
	case "error":
		// The XMPP user does not exist or cannot be reached: our subscribe
		// or probe bounced.
		p.log.Info("presence error from XMPP", "from", x.from, "to", x.to, "condition", x.errCond)
		if s := p.ins[k]; s != nil && s.auth != authGranted {
			p.inRevoked(k, x, mapping.ReasonNoResource)
		}
	}
}

// --- outbound: XMPP watcher -> SIP presentity ---

// outSubscribe: the XMPP user asks for the SIP user's presence (PRES-10,
// PRES-18).
func (p *presenceEngine) outSubscribe(k pairKey, x *xpres) {
	if o := p.outs[k]; o != nil {
		switch {
		case o.authorized:
			p.sendStanza(presenceStanza(o.sipJID, o.key.jid, "subscribed")) // PRES-18
			p.sendKnown(o, o.key.jid)
		case o.stopped || !p.live(o):
			o.stopped = false
			p.resubscribe(o, 0)
		}
		return
	}
	if len(p.outs) >= p.cfg.MaxSubscriptions {
		p.log.Warn("presence subscription refused: too many subscriptions", "user", x.user, "contact", x.sipURI)
		p.g.replyError(x.el, mapping.StanzaError{Type: "wait", Condition: "resource-constraint", Text: "too many presence subscriptions"})
		return
	}
	o := &outSub{key: k, sipJID: x.sipJID, userURI: x.userURI}
	p.outs[k] = o
	p.log.Info("presence subscription to SIP", "user", k.jid, "contact", k.uri)
	p.newOutDialog(o)
	p.sendSubscribe(o, p.cfg.SubscribeExpires)
	p.saveOut(o)
}

// newOutDialog starts a new dialog for o (a new Call-ID and From tag).
func (p *presenceEngine) newOutDialog(o *outSub) {
	if o.d.CallID != "" {
		delete(p.outDlg, dlgKey(o.d.CallID, o.d.LocalTag))
	}
	o.d = sipside.NewDialog(o.userURI, o.key.uri, "presence")
	o.expiresAt = time.Time{}
	o.gotNotify = false
	o.triedMin = false
	p.outDlg[dlgKey(o.d.CallID, o.d.LocalTag)] = o
}

// live reports whether o has a subscription in place or on its way.
func (p *presenceEngine) live(o *outSub) bool {
	return o.inFlight || o.d.Established() && time.Now().Before(o.expiresAt)
}

// resubscribe refreshes o's dialog if it is still valid, or subscribes in a
// new one, after d.
func (p *presenceEngine) resubscribe(o *outSub, d time.Duration) {
	p.cancel(o.refresh)
	o.refresh = nil
	if d > 0 {
		o.refresh = p.after(d, func() {
			o.refresh = nil
			p.resubscribe(o, 0)
		})
		return
	}
	if o.inFlight || o.closing || p.outs[o.key] != o {
		return
	}
	if !(o.d.Established() && time.Now().Before(o.expiresAt)) {
		p.newOutDialog(o)
	}
	p.sendSubscribe(o, p.cfg.SubscribeExpires)
}

// sendSubscribe sends o's SUBSCRIBE (initial or in its dialog).
func (p *presenceEngine) sendSubscribe(o *outSub, expires int) {
	o.inFlight = true
	o.lastSub = time.Now()
	refresh := o.d.Established()
	p.subscribes.Add(1)
	p.goSIP(o.d, sipside.DialogRequest{Method: "SUBSCRIBE", Expires: expires, Accept: "application/pidf+xml"},
		func(res sipside.DialogResult, err error) { p.subscribeDone(o, refresh, expires, res, err) })
}

// subscribeDone handles the final response to o's SUBSCRIBE (PRES-11,
// PRES-15).
func (p *presenceEngine) subscribeDone(o *outSub, refresh bool, expires int, res sipside.DialogResult, err error) {
	o.inFlight = false
	if o.closing || p.outs[o.key] != o {
		return // unsubscribed meanwhile
	}
	if res.Dialog.CallID != o.d.CallID {
		// Replaced meanwhile (a terminated NOTIFY, Timer N): a resubscribe
		// that found this request in flight did nothing, so the new dialog
		// is subscribed now unless a retry is already due.
		if !o.stopped && o.refresh == nil && !o.d.Established() {
			p.resubscribe(o, 0)
		}
		return
	}
	code := res.Code
	if err != nil {
		if errors.Is(err, sipside.ErrClosed) || errors.Is(err, context.Canceled) {
			return
		}
		p.log.Info("presence SUBSCRIBE failed", "user", o.key.jid, "contact", o.key.uri, "err", err)
		code = 408 // a timeout or transport failure counts as 408 (ERR-04)
	}
	// Keep what a NOTIFY that overtook the 2xx learnt (PRES-11).
	d := res.Dialog
	if o.d.Established() {
		d.RemoteTag, d.RemoteCSeq = o.d.RemoteTag, o.d.RemoteCSeq
		if len(o.d.RouteSet) > 0 && len(d.RouteSet) == 0 {
			d.RouteSet = o.d.RouteSet
		}
		if d.RemoteTarget == "" {
			d.RemoteTarget = o.d.RemoteTarget
		}
	}
	o.d.LocalCSeq = d.LocalCSeq
	if code >= 200 && code < 300 {
		o.d = d
		exp := res.Expires
		if exp < 0 {
			exp = expires
		}
		o.failures = 0
		o.expiresAt = time.Now().Add(time.Duration(exp) * time.Second)
		p.resubscribe(o, refreshDelay(exp))
		if !o.gotNotify && o.timerN == nil {
			o.timerN = p.after(timerN, func() {
				o.timerN = nil
				if !o.gotNotify && p.outs[o.key] == o {
					p.log.Info("presence subscription failed: no NOTIFY within Timer N", "user", o.key.jid, "contact", o.key.uri)
					p.subFail.Add(1)
					o.failures++
					p.newOutDialog(o)
					p.resubscribe(o, p.backoff(o.failures))
				}
			})
		}
		p.saveOut(o)
		return
	}
	p.subFail.Add(1)
	o.failures++
	action := mapping.SubscribeFailureAction(code, refresh)
	p.log.Info("presence SUBSCRIBE refused", "user", o.key.jid, "contact", o.key.uri, "code", code, "refresh", refresh, "action", action.String())
	wait := p.backoff(o.failures)
	if res.RetryAfter > 0 {
		wait = max(wait, time.Duration(res.RetryAfter)*time.Second)
	}
	switch action {
	case mapping.ActionUnsubscribed:
		p.endOut(o, true)
		return // gone, also from the store
	case mapping.ActionRetryMinExpires:
		if res.MinExpires > 0 && !o.triedMin {
			o.triedMin = true
			p.sendSubscribe(o, res.MinExpires)
			return
		}
		p.resubscribe(o, wait)
	case mapping.ActionNewDialog:
		p.newOutDialog(o)
		if o.failures <= 1 {
			wait = 0
		}
		p.resubscribe(o, wait)
	case mapping.ActionStop:
		o.stopped = true
		p.forget(o)
	default: // retry later; a refreshed subscription stays valid until its expiry
		p.resubscribe(o, wait)
	}
	p.saveOut(o)
}

// forget marks every known resource of the SIP user unavailable to the
// watcher: the subscription ended and nothing is known any more.
func (p *presenceEngine) forget(o *outSub) {
	for _, mp := range o.pres.Available() {
		p.sendPresence(mapping.Presence{From: mp.From, Type: mapping.PresenceUnavailable}, o.key.jid)
	}
	o.pres = mapping.PresenceState{}
}

// endOut drops o; with unsubscribed, the XMPP user learns that the
// authorization is gone (PRES-15 row 1, PRES-16c).
func (p *presenceEngine) endOut(o *outSub, unsubscribed bool) {
	p.forget(o)
	if unsubscribed {
		p.sendStanza(presenceStanza(o.sipJID, o.key.jid, "unsubscribed"))
	}
	p.cancel(o.refresh)
	p.cancel(o.timerN)
	delete(p.outs, o.key)
	delete(p.outDlg, dlgKey(o.d.CallID, o.d.LocalTag))
	p.deleteOut(o)
}

// sendKnown sends the SIP user's last known presence to an XMPP user, or
// unavailable when none is known (PRES-32a).
func (p *presenceEngine) sendKnown(o *outSub, to string) {
	avail := o.pres.Available()
	if len(avail) == 0 {
		p.sendStanza(presenceStanza(o.sipJID, to, mapping.PresenceUnavailable))
		return
	}
	for _, mp := range avail {
		p.sendPresence(mp, to)
	}
}

// outUnsubscribe: the XMPP user stops watching (PRES-17): SUBSCRIBE with
// Expires 0 in the dialog, then unsubscribed from the contact. The dialog
// still answers its final NOTIFY for a while.
func (p *presenceEngine) outUnsubscribe(k pairKey, x *xpres) {
	o := p.outs[k]
	if o == nil {
		p.sendStanza(presenceStanza(x.sipJID, x.user, "unsubscribed"))
		return
	}
	p.log.Info("presence subscription to SIP ended by the XMPP user", "user", k.jid, "contact", k.uri)
	p.cancel(o.refresh)
	p.cancel(o.timerN)
	o.refresh, o.timerN = nil, nil
	delete(p.outs, k)
	p.deleteOut(o)
	o.closing = true
	dk := dlgKey(o.d.CallID, o.d.LocalTag)
	finish := func() {
		if p.outs[k] == nil {
			// Unless the user subscribed again meanwhile: then this late
			// answer would cancel the new request in her roster.
			p.forget(o)
			p.sendStanza(presenceStanza(o.sipJID, o.key.jid, "unsubscribed"))
		}
		p.after(fetchLife, func() {
			if p.outDlg[dk] == o {
				delete(p.outDlg, dk)
			}
		})
	}
	if !o.d.Established() || !time.Now().Before(o.expiresAt) {
		finish()
		return
	}
	p.subscribes.Add(1)
	p.goSIP(o.d, sipside.DialogRequest{Method: "SUBSCRIBE", Expires: 0, Accept: "application/pidf+xml"},
		func(res sipside.DialogResult, err error) {
			o.d.LocalCSeq = res.Dialog.LocalCSeq
			if err != nil || res.Code >= 300 {
				p.log.Info("presence unsubscribe not accepted by SIP", "user", o.key.jid, "contact", o.key.uri, "code", res.Code, "err", err)
			}
			finish()
		})
}

// outProbe: the XMPP user's server asks for the SIP user's presence
// (PRES-32, PRES-33, D5).
func (p *presenceEngine) outProbe(k pairKey, x *xpres) {
	o := p.outs[k]
	switch {
	case o == nil:
		p.startFetch(k, x)
	case o.authorized:
		p.sendKnown(o, x.from)
		if o.stopped || !p.live(o) {
			o.stopped = false
			p.resubscribe(o, 0)
		} else if !o.inFlight && time.Since(o.lastSub) > probeRefresh {
			p.resubscribe(o, 0) // PRES-14b: the user came online
		}
	case o.stopped || !p.live(o):
		o.stopped = false
		p.resubscribe(o, 0)
	}
}

// startFetch sends a one-shot SUBSCRIBE (Expires 0, new dialog) for a probe
// without a subscription, and relays the answer to the prober (PRES-33b).
func (p *presenceEngine) startFetch(k pairKey, x *xpres) {
	if len(p.fetches) >= p.cfg.MaxSubscriptions {
		return
	}
	f := &fetch{key: k, sipJID: x.sipJID, prober: x.from, d: sipside.NewDialog(x.userURI, x.sipURI, "presence")}
	dk := dlgKey(f.d.CallID, f.d.LocalTag)
	p.fetches[dk] = f
	f.done = p.after(fetchLife, func() { delete(p.fetches, dk) })
	p.subscribes.Add(1)
	p.goSIP(f.d, sipside.DialogRequest{Method: "SUBSCRIBE", Expires: 0, Accept: "application/pidf+xml"},
		func(res sipside.DialogResult, err error) {
			if err == nil && res.Code >= 300 && mapping.SubscribeFailureAction(res.Code, false) == mapping.ActionUnsubscribed {
				p.sendStanza(presenceStanza(f.sipJID, f.prober, "unsubscribed")) // PRES-32b
			}
			if err != nil || res.Code >= 300 {
				p.cancel(f.done)
				delete(p.fetches, dk)
			}
		})
}
