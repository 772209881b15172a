package component

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"slices"
	"time"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

// SIP requests for presence: SUBSCRIBE from SIP watchers (CHECKLIST 4.3)
// and NOTIFY for our own subscriptions (CHECKLIST 4.2).

// HandleSIPSubscribe is the sipside.SubscribeHandler. sipside has checked
// the source, the syntax, Event, Accept and Expires (PRES-20, PRES-21).
func (g *Gateway) HandleSIPSubscribe(ctx context.Context, s *sipside.IncomingSubscribe) sipside.SubscribeReply {
	if g.presence == nil {
		return sipside.SubscribeReply{Code: 489}
	}
	p := g.presence
	if !s.Initial {
		// In the dialog: the Request-URI is our Contact; the dialog tells
		// who is who.
		return ask(p, ctx, sipside.SubscribeReply{Code: 503}, func() sipside.SubscribeReply {
			return p.onSubscribe(pairKey{}, "", s)
		})
	}
	user, watcher, watcherURI, err := g.sipParties(s.RequestURI, s.Dialog.RemoteURI)
	user = bareJID(user)
	if err != nil {
		r := sipReplyFor(err)
		g.log.Info("SIP SUBSCRIBE refused", "code", r.Code, "from", s.Dialog.RemoteURI, "to", s.RequestURI, "source", s.Source.String(), "err", err)
		return sipside.SubscribeReply{Code: r.Code}
	}
	return ask(p, ctx, sipside.SubscribeReply{Code: 503}, func() sipside.SubscribeReply {
		return p.onSubscribe(pairKey{jid: user, uri: watcherURI}, watcher, s)
	})
}

// HandleSIPNotify is the sipside.NotifyHandler.
func (g *Gateway) HandleSIPNotify(ctx context.Context, n *sipside.IncomingNotify) sipside.Reply {
	if g.presence == nil {
		return sipside.Reply{Code: 481}
	}
	p := g.presence
	return ask(p, ctx, sipside.Reply{Code: 503, Headers: map[string]string{"Retry-After": "5"}}, func() sipside.Reply {
		return p.onNotify(n)
	})
}

// --- inbound: SIP watcher -> XMPP presentity ---

// onSubscribe takes a SUBSCRIBE on the loop (PRES-21..PRES-26).
func (p *presenceEngine) onSubscribe(k pairKey, watcher string, s *sipside.IncomingSubscribe) sipside.SubscribeReply {
	k.jid = p.intern(k.jid)
	s.Dialog.LocalURI, s.Dialog.Event = p.intern(s.Dialog.LocalURI), p.intern(s.Dialog.Event)
	dk := dlgKey(s.Dialog.CallID, s.Dialog.LocalTag)
	var dl *inDialog
	if s.Initial {
		sub := p.ins[k]
		if sub == nil {
			if len(p.ins) >= p.cfg.MaxSubscriptions {
				p.log.Warn("SIP SUBSCRIBE refused: too many subscriptions", "watcher", k.uri, "user", k.jid)
				return sipside.SubscribeReply{Code: 503}
			}
			sub = &inSub{key: k, watcher: watcher}
			p.ins[k] = sub
		}
		if len(sub.dialogs) >= p.cfg.MaxDialogsPerPair || len(p.inDlg) >= p.cfg.MaxSubscriptions {
			p.log.Warn("SIP SUBSCRIBE refused: too many dialogs", "watcher", k.uri, "user", k.jid, "dialogs", len(sub.dialogs))
			p.dropEmpty(sub)
			return sipside.SubscribeReply{Code: 503}
		}
		dl = &inDialog{sub: sub, d: s.Dialog, key: dk}
		sub.dialogs = append(sub.dialogs, dl)
		p.inDlg[dk] = dl
		p.log.Info("SIP watcher subscribed", "watcher", k.uri, "user", k.jid, "expires", s.Expires, "call_id", s.Dialog.CallID)
	} else {
		dl = p.inDlg[dk]
		if dl == nil || dl.d.RemoteTag != s.Dialog.RemoteTag {
			return sipside.SubscribeReply{Code: 481}
		}
		if s.Dialog.RemoteCSeq <= dl.d.RemoteCSeq {
			return sipside.SubscribeReply{Code: 500, Reason: "CSeq Out Of Order"} // RFC 3261 §12.2.2
		}
		dl.d.RemoteCSeq = s.Dialog.RemoteCSeq
		if s.Dialog.RemoteTarget != "" {
			dl.d.RemoteTarget = s.Dialog.RemoteTarget
		}
	}
	exp := s.Expires
	if exp > 0 {
		dl.expiresAt = time.Now().Add(time.Duration(exp) * time.Second).UnixNano()
		p.cancel(dl.expiry)
		dl.expiry = p.after(time.Duration(exp)*time.Second, func() { p.expire(dl) })
	}
	p.saveIn(dl.sub)
	initial := s.Initial
	return sipside.SubscribeReply{Code: 200, Expires: exp, Then: func() {
		p.postWait(func() { p.subscribed(dl, exp, initial) })
	}}
}

// subscribed runs once the 200 is out: the first NOTIFY (PRES-22).
func (p *presenceEngine) subscribed(dl *inDialog, exp int, initial bool) {
	if p.inDlg[dl.key] != dl {
		return
	}
	s := dl.sub
	if exp == 0 {
		// Unsubscribe, or a fetch (PRES-26).
		if initial && s.auth == authGranted && !s.known {
			p.probe(s)
			dl.final = p.after(fetchHold, func() { p.terminate(dl, mapping.ReasonTimeout) })
			return
		}
		p.terminate(dl, mapping.ReasonTimeout)
		return
	}
	switch s.auth {
	case authGranted:
		if !s.known {
			p.probe(s) // PRES-30
		}
	default:
		if initial || s.auth == authUnknown {
			// PRES-23: ask the XMPP user. No probe yet: a server answers a
			// probe from a contact it has not authorized with unsubscribed
			// (RFC 6121 §4.3.2, Prosody does), which would read as a
			// refusal; once the user approves, her server sends her
			// presence by itself (RFC 6121 §3.1.5).
			p.sendStanza(presenceStanza(s.watcher, s.key.jid, "subscribe"))
			if s.auth != authPending {
				s.auth = authPending
				p.saveIn(s)
			}
		}
	}
	p.notify(dl, true)
}

// expire ends a dialog that was not refreshed (PRES-26).
func (p *presenceEngine) expire(dl *inDialog) {
	dl.expiry = nil
	if p.inDlg[dl.key] == dl {
		p.log.Info("SIP watcher subscription expired", "watcher", dl.sub.key.uri, "user", dl.sub.key.jid)
		p.terminate(dl, mapping.ReasonTimeout)
	}
}

// notify sends dl a NOTIFY with the complete current state (PRES-29), at
// once when force (a new or changed subscription state), else no sooner
// than NotifyInterval after the last one (PRES-28).
func (p *presenceEngine) notify(dl *inDialog, force bool) {
	if p.inDlg[dl.key] != dl || dl.final != nil {
		return
	}
	if dl.inFlight {
		dl.dirty = true
		dl.forced = dl.forced || force
		return
	}
	if wait := p.cfg.NotifyInterval - time.Since(time.Unix(0, dl.lastSent)); !force && wait > 0 {
		dl.dirty = true
		if dl.later == nil {
			dl.later = p.after(wait, func() {
				dl.later = nil
				p.notify(dl, false)
			})
		}
		return
	}
	p.cancel(dl.later)
	dl.later = nil
	dl.forced = false
	s := dl.sub
	state := mapping.SubscriptionState{State: mapping.SubStatePending, HasExpires: true}
	var body []byte
	var lang string
	if s.auth == authGranted {
		state.State = mapping.SubStateActive
		if s.known {
			var err error
			body, lang, err = p.pidf(s, dl.withGone(s.pres.Available()))
			if err != nil {
				p.log.Error("PIDF not built", "user", s.key.jid, "err", err)
				body = nil
			}
		}
	}
	state.Expires = max(int(time.Until(time.Unix(0, dl.expiresAt)).Seconds()), 1)
	dl.dirty = false
	p.sendNotify(dl, state, body, lang, func(ok bool) {
		if ok && dl.dirty {
			p.notify(dl, dl.forced)
		}
	})
}

// withGone adds to ps, the available resources, a closed presence for each
// resource the last PIDF sent in dl showed open and that has gone since, so
// that its tuple reads closed once (PRES-41), and records what ps shows.
func (dl *inDialog) withGone(ps []mapping.Presence) []mapping.Presence {
	open := make([]string, 0, len(ps))
	for _, mp := range ps {
		open = append(open, mp.From)
	}
	for _, from := range dl.shown {
		if !slices.Contains(open, from) {
			ps = append(ps, mapping.Presence{From: from, Type: mapping.PresenceUnavailable})
		}
	}
	dl.shown = open
	return ps
}

// pidf renders the XMPP user's presence ps for the watcher (CHECKLIST 4.4).
func (p *presenceEngine) pidf(s *inSub, ps []mapping.Presence) ([]byte, string, error) {
	return p.g.addr.PresenceToPIDF(s.key.jid, ps, mapping.PIDFOptions{
		Timestamp: p.g.now().UTC().Format(time.RFC3339Nano), RPID: true,
	})
}

// sendNotify sends one NOTIFY in dl; then runs with whether the dialog
// lives on. Failures that mean the dialog is gone remove it (PRES-27).
func (p *presenceEngine) sendNotify(dl *inDialog, state mapping.SubscriptionState, body []byte, lang string, then func(ok bool)) {
	hv, err := state.Format()
	if err != nil {
		p.log.Error("Subscription-State not formatted", "err", err)
		return
	}
	r := sipside.DialogRequest{Method: "NOTIFY", SubscriptionState: hv, ContentLanguage: lang}
	if body != nil {
		r.ContentType, r.Body = "application/pidf+xml", body
	}
	dl.inFlight = true
	dl.lastSent = time.Now().UnixNano()
	d := dl.d
	dl.d.LocalCSeq++
	p.notifies.Add(1)
	p.goSIP(d, r, func(res sipside.DialogResult, err error) {
		dl.inFlight = false
		code := res.Code
		if err != nil {
			if errors.Is(err, sipside.ErrClosed) || errors.Is(err, context.Canceled) {
				return
			}
			code = 408
		}
		if code >= 200 && code < 300 {
			if t := res.Dialog.RemoteTarget; t != "" && t != dl.d.RemoteTarget && p.inDlg[dl.key] == dl {
				dl.d.RemoteTarget = t
			}
			if then != nil {
				then(true)
			}
			return
		}
		p.notifyFail.Add(1)
		p.log.Info("NOTIFY to SIP watcher failed", "watcher", dl.sub.key.uri, "user", dl.sub.key.jid, "code", code, "err", err)
		if notifyRemoves(code) && p.inDlg[dl.key] == dl {
			p.removeDialog(dl) // PRES-27
			return
		}
		if then != nil {
			then(p.inDlg[dl.key] == dl)
		}
	})
	// The CSeq is written every cseqSaveEvery NOTIFYs, not each time:
	// restore adds cseqMargin, which covers the ones not written.
	if dl.d.LocalCSeq-dl.savedCSeq >= cseqSaveEvery {
		p.saveIn(dl.sub)
	}
}

// notifyRemoves lists the NOTIFY failures after which the dialog MUST (or,
// for Timer F, SHOULD) be removed (RFC 6665 §4.2.2; PRES-27).
func notifyRemoves(code int) bool {
	switch {
	case code == 404, code == 405, code == 408, code == 410, code == 416, code >= 480 && code <= 485,
		code == 489, code == 501, code == 604:
		return true
	}
	return false
}

// terminate sends the final NOTIFY of dl and removes it. For a timeout the
// body is the PIDF of the current state if it is known and authorized, else
// a closed one (PRES-26a); other reasons send no body (PRES-24).
func (p *presenceEngine) terminate(dl *inDialog, reason string) {
	if p.inDlg[dl.key] != dl {
		return
	}
	s := dl.sub
	var body []byte
	var lang string
	if reason == mapping.ReasonTimeout {
		var err error
		if s.auth == authGranted && s.known {
			body, lang, err = p.pidf(s, s.pres.Available())
		} else {
			body, lang, err = p.g.addr.PresenceToPIDF(s.key.jid, nil, mapping.PIDFOptions{Timestamp: p.g.now().UTC().Format(time.RFC3339Nano)})
		}
		if err != nil {
			body = nil
		}
	}
	p.removeDialog(dl)
	p.sendNotify(dl, mapping.SubscriptionState{State: mapping.SubStateTerminated, Reason: reason}, body, lang, nil)
}

// removeDialog forgets dl. When the last dialog of a watcher goes, the XMPP
// user gets unavailable from the SIP user (PRES-26b) unless the other
// direction knows the SIP user's presence; the authorization is kept.
func (p *presenceEngine) removeDialog(dl *inDialog) {
	s := dl.sub
	p.cancel(dl.expiry)
	p.cancel(dl.later)
	p.cancel(dl.final)
	dl.expiry, dl.later, dl.final = nil, nil, nil
	delete(p.inDlg, dl.key)
	if i := slices.Index(s.dialogs, dl); i >= 0 {
		s.dialogs = slices.Delete(s.dialogs, i, i+1)
	}
	if len(s.dialogs) == 0 {
		if o := p.outs[s.key]; o == nil || !o.authorized {
			p.sendStanza(presenceStanza(s.watcher, s.key.jid, mapping.PresenceUnavailable))
		}
	}
	p.saveIn(s)
	p.dropEmpty(s)
}

// dropEmpty forgets an inbound subscription with no dialogs and nothing to
// remember.
func (p *presenceEngine) dropEmpty(s *inSub) {
	if len(s.dialogs) == 0 && s.auth == authUnknown {
		p.cancel(s.probeDue)
		delete(p.ins, s.key)
		p.saveIn(s)
	}
}

// inAuthorized: the XMPP user approved the SIP watcher (PRES-24).
func (p *presenceEngine) inAuthorized(k pairKey, x *xpres) {
	s := p.ins[k]
	if s == nil {
		if len(p.ins) >= p.cfg.MaxSubscriptions {
			return
		}
		s = &inSub{key: k, watcher: x.sipJID}
		p.ins[k] = s
	}
	if s.auth == authGranted {
		return
	}
	s.auth = authGranted
	p.log.Info("XMPP user authorized SIP watcher", "user", k.jid, "watcher", k.uri)
	p.saveIn(s)
	for _, dl := range s.dialogs {
		p.notify(dl, true)
	}
}

// inRevoked: the XMPP user refused or cancelled the SIP watcher's
// subscription (PRES-24), or does not exist: every dialog ends.
func (p *presenceEngine) inRevoked(k pairKey, x *xpres, reason string) {
	s := p.ins[k]
	if s == nil {
		return
	}
	p.log.Info("SIP watcher not authorized", "user", k.jid, "watcher", k.uri, "reason", reason)
	for _, dl := range slices.Clone(s.dialogs) { // terminate removes from s.dialogs
		p.terminate(dl, reason)
	}
	s.auth = authDenied
	if reason == mapping.ReasonNoResource {
		s.auth = authUnknown
	}
	s.pres, s.known = mapping.PresenceState{}, false
	p.saveIn(s)
	p.dropEmpty(s)
}

// inPresence: the XMPP user's presence for the SIP user (CHECKLIST 4.4).
func (p *presenceEngine) inPresence(k pairKey, x *xpres) {
	s := p.ins[k]
	if s == nil {
		return // nobody on SIP watches
	}
	if s.auth != authGranted {
		// Not the user's presence for this watcher yet: her server answers
		// a subscribe it holds for approval with unavailable (Prosody
		// does); once she approves, it sends her real presence.
		return
	}
	mp := x.mp
	mp.To = "" // not part of the state: each watcher's copy need not keep it
	mp.From = p.intern(mp.From)
	changed, err := s.pres.Apply(mp)
	if err != nil {
		p.log.Info("XMPP presence not mapped", "from", x.from, "to", x.to, "err", err)
		return
	}
	first := !s.known
	s.known = true
	if !changed && !first {
		return
	}
	for _, dl := range slices.Clone(s.dialogs) { // terminate removes from s.dialogs
		if dl.final != nil {
			p.cancel(dl.final)
			dl.final = nil
			p.terminate(dl, mapping.ReasonTimeout)
			continue
		}
		if s.auth == authGranted {
			p.notify(dl, false)
		}
	}
}

// --- NOTIFY for our subscriptions ---

// onNotify takes a NOTIFY on the loop (PRES-11..PRES-16, PRES-42).
func (p *presenceEngine) onNotify(n *sipside.IncomingNotify) sipside.Reply {
	dk := dlgKey(n.CallID, n.LocalTag)
	if f := p.fetches[dk]; f != nil {
		return p.onFetchNotify(dk, f, n)
	}
	o := p.outDlg[dk]
	if o == nil {
		p.log.Info("NOTIFY for an unknown subscription", "call_id", n.CallID, "from", n.From, "source", n.Source.String())
		return sipside.Reply{Code: 481}
	}
	if o.d.Established() && o.d.RemoteTag != n.RemoteTag {
		return sipside.Reply{Code: 481} // a second fork: one dialog per subscription (PRES-03)
	}
	if n.Package != "presence" {
		return sipside.Reply{Code: 489}
	}
	if o.d.RemoteCSeq != 0 && n.CSeq <= o.d.RemoteCSeq {
		return sipside.Reply{Code: 500, Reason: "CSeq Out Of Order"}
	}
	st, err := mapping.ParseSubscriptionState(n.SubscriptionState)
	if err != nil {
		p.log.Info("NOTIFY refused", "code", 400, "from", n.From, "err", err)
		return sipside.Reply{Code: 400, Reason: "Bad Subscription-State"}
	}
	ps, reply := p.notifyBody(n, o.key.uri, o.key.jid)
	if reply.Code != 0 {
		return reply
	}
	if !o.d.Established() {
		// The NOTIFY overtook the 2xx (PRES-11): it creates the dialog.
		o.d.RemoteTag = n.RemoteTag
		o.d.RouteSet = n.RouteSet
	}
	if n.Contact != "" {
		o.d.RemoteTarget = n.Contact
	}
	o.d.RemoteCSeq = n.CSeq
	o.gotNotify = true
	p.cancel(o.timerN)
	o.timerN = nil
	if o.closing {
		if st.State == mapping.SubStateTerminated {
			delete(p.outDlg, dk)
		}
		return sipside.Reply{Code: 200}
	}
	switch st.State {
	case mapping.SubStatePending:
		// PRES-12: nothing goes to XMPP.
	case mapping.SubStateActive:
		if !o.authorized {
			o.authorized = true
			p.log.Info("SIP user authorized XMPP watcher", "user", o.key.jid, "contact", o.key.uri)
			p.sendStanza(presenceStanza(o.sipJID, o.key.jid, "subscribed")) // PRES-13b
		}
		p.applyNotify(o, ps, n.Body != nil)
		if st.HasExpires {
			o.expiresAt = time.Now().Add(time.Duration(st.Expires) * time.Second)
			if !o.inFlight {
				p.resubscribe(o, refreshDelay(st.Expires))
			}
		}
	case mapping.SubStateTerminated:
		p.applyNotify(o, ps, n.Body != nil)
		action := st.Action()
		p.log.Info("SIP subscription terminated", "user", o.key.jid, "contact", o.key.uri, "reason", st.Reason, "action", action.String())
		o.expiresAt = time.Time{}
		switch action {
		case mapping.ActionUnsubscribed:
			p.endOut(o, true)
			return sipside.Reply{Code: 200}
		case mapping.ActionResubscribeNow:
			p.newOutDialog(o)
			o.failures++
			wait := time.Duration(0)
			if o.failures > 1 {
				wait = p.backoff(o.failures)
			}
			p.resubscribe(o, wait)
		case mapping.ActionStop:
			o.stopped = true
			p.forget(o)
		default:
			p.forget(o)
			o.failures++
			wait := p.backoff(o.failures)
			if st.HasRetryAfter {
				wait = max(wait, time.Duration(st.RetryAfter)*time.Second)
			}
			p.newOutDialog(o)
			p.resubscribe(o, wait)
		}
	}
	p.saveOut(o)
	return sipside.Reply{Code: 200}
}

// notifyBody checks and maps a NOTIFY body: nil presences for an empty
// body; a reply code for a body we cannot take (413, 415, 400).
func (p *presenceEngine) notifyBody(n *sipside.IncomingNotify, sipURI, watcher string) ([]mapping.Presence, sipside.Reply) {
	if n.TooLarge {
		p.log.Info("NOTIFY refused", "code", 413, "from", n.From, "body_bytes", n.BodySize)
		return nil, sipside.Reply{Code: 413}
	}
	if len(n.Body) == 0 {
		return nil, sipside.Reply{}
	}
	mt, _, err := mime.ParseMediaType(n.ContentType)
	if err != nil || mt != "application/pidf+xml" {
		p.log.Info("NOTIFY refused", "code", 415, "from", n.From, "content_type", n.ContentType)
		return nil, sipside.Reply{Code: 415, Headers: map[string]string{"Accept": "application/pidf+xml"}}
	}
	ps, err := p.g.addr.PresenceFromPIDF(sipURI, watcher, n.Body, n.ContentLanguage)
	if err != nil {
		p.log.Info("NOTIFY refused", "code", 400, "from", n.From, "err", err)
		return nil, sipside.Reply{Code: 400, Reason: "Malformed PIDF"}
	}
	return ps, sipside.Reply{}
}

// applyNotify sends what a PIDF says to the watcher: every resource, and
// unavailable for resources that vanished (PRES-13c, PRES-42). An empty
// body changes nothing.
func (p *presenceEngine) applyNotify(o *outSub, ps []mapping.Presence, hasBody bool) {
	if !hasBody {
		return
	}
	before := make(map[string]mapping.Presence, o.pres.Len())
	for _, mp := range o.pres.Available() {
		before[mp.From] = mp
	}
	gone, err := o.pres.Replace(ps)
	if err != nil {
		p.log.Info("PIDF presence not applied", "contact", o.key.uri, "err", err)
		return
	}
	for _, mp := range gone {
		p.sendPresence(mp, o.key.jid)
	}
	// The first document is sent whole; later ones only what changed (a
	// refresh NOTIFY repeats the same state).
	first := !o.gotDoc
	o.gotDoc = true
	now := make(map[string]mapping.Presence, o.pres.Len())
	for _, mp := range o.pres.Available() {
		now[mp.From] = mp
	}
	for _, mp := range ps {
		if !first {
			old, was := before[mp.From]
			cur, is := now[mp.From]
			if was == is && (!is || old == cur) {
				continue // unchanged
			}
		}
		p.sendPresence(mp, o.key.jid)
	}
}

// onFetchNotify relays the answer of a one-shot fetch to the prober
// (PRES-33b).
func (p *presenceEngine) onFetchNotify(dk dkey, f *fetch, n *sipside.IncomingNotify) sipside.Reply {
	st, err := mapping.ParseSubscriptionState(n.SubscriptionState)
	if err != nil {
		return sipside.Reply{Code: 400, Reason: "Bad Subscription-State"}
	}
	ps, reply := p.notifyBody(n, f.key.uri, f.key.jid)
	if reply.Code != 0 {
		return reply
	}
	for _, mp := range ps {
		p.sendPresence(mp, f.prober)
	}
	if st.State == mapping.SubStateTerminated {
		if st.Action() == mapping.ActionUnsubscribed {
			p.sendStanza(presenceStanza(f.sipJID, f.prober, "unsubscribed"))
		}
		p.cancel(f.done)
		delete(p.fetches, dk)
	}
	return sipside.Reply{Code: 200}
}

// --- restore ---

// restore loads the stored subscriptions and schedules their refreshes
// (outbound) and probes (inbound) spread over time, RestoreRate a second
// (persistence; PRES-30).
func (p *presenceEngine) restore() error {
	st := p.cfg.Store
	if st == nil {
		return nil
	}
	now := time.Now()
	var ins []inRecord
	var outs []outRecord
	if err := st.ForEach(bucketIn, func(_ string, raw []byte) error {
		var r inRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			p.log.Warn("presence record skipped", "bucket", bucketIn, "err", err)
			return nil
		}
		ins = append(ins, r)
		return nil
	}); err != nil {
		return err
	}
	if err := st.ForEach(bucketOut, func(_ string, raw []byte) error {
		var r outRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			p.log.Warn("presence record skipped", "bucket", bucketOut, "err", err)
			return nil
		}
		outs = append(outs, r)
		return nil
	}); err != nil {
		return err
	}
	spread := func(n int) time.Duration {
		return time.Duration(n) * time.Second / time.Duration(p.cfg.RestoreRate)
	}
	due := 0
	for _, r := range ins {
		k := pairKey{jid: p.intern(r.JID), uri: r.URI}
		s := &inSub{key: k, watcher: r.Watcher, auth: r.Auth}
		for _, dr := range r.Dialogs {
			if !dr.Expires.After(now) {
				continue // expired while we were away
			}
			d := dr.Dialog
			d.LocalCSeq += cseqMargin
			d.LocalURI, d.Event = p.intern(d.LocalURI), p.intern(d.Event)
			dl := &inDialog{sub: s, d: d, key: dlgKey(d.CallID, d.LocalTag), expiresAt: dr.Expires.UnixNano()}
			dl.expiry = p.after(dr.Expires.Sub(now), func() { p.expire(dl) })
			s.dialogs = append(s.dialogs, dl)
			p.inDlg[dl.key] = dl
		}
		if len(s.dialogs) == 0 && s.auth == authUnknown {
			p.markDirty(bucketIn, k.String(), nil)
			continue
		}
		p.ins[k] = s
		if len(s.dialogs) > 0 && s.auth == authGranted {
			// Learn the XMPP user's presence again (PRES-30); the NOTIFY
			// follows when it arrives.
			due++
			s.probeDue = p.after(spread(due)+jitter(time.Second, 10), func() {
				s.probeDue = nil
				p.probe(s)
			})
		}
		p.saveIn(s)
	}
	due = 0
	for _, r := range outs {
		k := pairKey{jid: r.JID, uri: r.URI}
		o := &outSub{key: k, sipJID: r.SIPJID, userURI: r.UserURI, authorized: r.Authorized, stopped: r.Stopped, d: r.Dialog, expiresAt: r.Expires, gotNotify: true}
		for _, mp := range r.Presence {
			if _, err := o.pres.Apply(mp); err != nil {
				p.log.Warn("stored presence skipped", "contact", r.URI, "err", err)
			}
		}
		if o.d.CallID == "" {
			p.newOutDialog(o)
		} else {
			o.d.LocalCSeq += cseqMargin
			p.outDlg[dlgKey(o.d.CallID, o.d.LocalTag)] = o
		}
		p.outs[k] = o
		p.saveOut(o) // the raised CSeq, before a second restart could reuse it
		if o.stopped {
			continue
		}
		// Refresh at the usual time, but no earlier than this record's
		// turn in the spread.
		due++
		wait := spread(due)
		if o.expiresAt.After(now) {
			left := int(o.expiresAt.Sub(now).Seconds())
			wait = max(wait, o.expiresAt.Sub(now)-time.Duration(left)*time.Second/5)
		}
		p.resubscribe(o, wait)
	}
	p.updateGauges()
	// The engine holds the records now: the store forgets its copy, and
	// the journal is rewritten with what is live (deleted and expired
	// records go).
	st.Release()
	p.compact()
	if len(ins)+len(outs) > 0 {
		p.log.Info("presence subscriptions restored", "inbound", len(p.ins), "inbound_dialogs", len(p.inDlg), "outbound", len(p.outs))
	}
	return nil
}
