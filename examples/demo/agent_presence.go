//go:build unix

package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Presence (RFC 3856, RFC 6665) in the demo's SIP agent, in two roles:
//   - bob's presence agent: it answers SUBSCRIBEs for bob (from stox, for
//     XMPP users who watch him) with 200 and NOTIFYs carrying a PIDF
//     document of bob's state, and sends a NOTIFY in every such dialog
//     when bob's state changes (setBob);
//   - a SIP watcher: bob subscribes to an XMPP user through stox (watch)
//     and takes the NOTIFYs stox sends, refreshing the subscription before
//     it expires.
//
// No other SIP user of the agent has presence: SUBSCRIBEs for them get 404.

const (
	pidfType       = "application/pidf+xml"
	maxSubExpires  = 3600 // what bob's presence agent grants at most
	minSubExpires  = 60
	bobTupleID     = "ID-phone" // stox maps it to the resource bob@.../phone
	presenceEvent  = "presence"
	notifyDeadline = 10 * time.Second
)

// bobState is bob's presence as his presence agent publishes it.
type bobState struct {
	open bool
	note string
}

func (s bobState) String() string {
	basic := "closed"
	if s.open {
		basic = "open"
	}
	if s.note == "" {
		return basic
	}
	return fmt.Sprintf("%s %q", basic, s.note)
}

// presenceAgent is the agent's presence state; its maps and bob's state are
// guarded by mu, each dialog's CSeq by the dialog's own lock.
type presenceAgent struct {
	mu        sync.Mutex
	bob       bobState
	notifiers map[string]*notifierDialog // callID + our tag -> a watcher of bob
	watches   map[string]*watchDialog    // callID + our tag -> bob watching someone
	// notifies gets every NOTIFY the watcher took (never blocks: the
	// script reads it, later nobody does).
	notifies chan watchNotify
}

func (ps *presenceAgent) init() {
	ps.bob = bobState{open: false, note: "offline"}
	ps.notifiers = map[string]*notifierDialog{}
	ps.watches = map[string]*watchDialog{}
	ps.notifies = make(chan watchNotify, 64)
}

// notifierDialog is one subscription to bob's presence (we are the
// notifier).
type notifierDialog struct {
	send sync.Mutex // one NOTIFY at a time, in CSeq order
	cseq uint32     // under send

	callID, localTag, remoteTag string
	local, remote               sip.Uri // bob, the watcher
	transport                   string  // towards target
	target                      sip.Uri // the watcher's Contact (under presenceAgent.mu)
	expires                     time.Time
	lastCSeq                    uint32 // the watcher's last SUBSCRIBE CSeq (under presenceAgent.mu)
}

// watchDialog is bob's subscription to an XMPP user (we are the
// subscriber).
type watchDialog struct {
	refreshMu sync.Mutex // one SUBSCRIBE at a time
	cseq      uint32     // under refreshMu

	callID, localTag string
	local, remote    sip.Uri // bob, the XMPP user
	// Under presenceAgent.mu:
	remoteTag  string
	target     sip.Uri // stox's Contact
	lastNotify uint32  // CSeq of the last NOTIFY taken
	refresh    *time.Timer
	ended      bool
}

// watchNotify is one NOTIFY the watcher took.
type watchNotify struct {
	presentity string // sip:alice@example.com
	state      string // the Subscription-State value
	tuples     []pidfTuple
}

// stateName is the Subscription-State without parameters.
func (n watchNotify) stateName() string {
	s, _, _ := strings.Cut(n.state, ";")
	return strings.ToLower(strings.TrimSpace(s))
}

// pidfTuple is what the demo shows of a PIDF tuple.
type pidfTuple struct {
	ID    string `xml:"id,attr"`
	Basic string `xml:"status>basic"`
	Show  string `xml:"status>show"`
	Note  string `xml:"note"`
}

func (t pidfTuple) String() string {
	s := "tuple " + t.ID + " " + t.Basic
	if t.Show != "" {
		s += " (" + t.Show + ")"
	}
	if t.Note != "" {
		s += fmt.Sprintf(" %q", t.Note)
	}
	return s
}

type pidfDoc struct {
	XMLName xml.Name    `xml:"urn:ietf:params:xml:ns:pidf presence"`
	Entity  string      `xml:"entity,attr"`
	Tuples  []pidfTuple `xml:"tuple"`
}

func parsePIDF(body []byte) ([]pidfTuple, error) {
	var d pidfDoc
	if err := xml.Unmarshal(body, &d); err != nil {
		return nil, err
	}
	for i := range d.Tuples {
		d.Tuples[i].Basic = strings.TrimSpace(d.Tuples[i].Basic)
		d.Tuples[i].Note = strings.TrimSpace(d.Tuples[i].Note)
	}
	return d.Tuples, nil
}

func tuplesString(ts []pidfTuple) string {
	if len(ts) == 0 {
		return "no body"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.String()
	}
	return "PIDF " + strings.Join(parts, "; ")
}

// bobPIDF renders bob's state (RFC 3863).
func bobPIDF(entity, contact string, s bobState) []byte {
	basic := "closed"
	if s.open {
		basic = "open"
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="%s">`+"\n", xmlEscape(entity))
	fmt.Fprintf(&b, `  <tuple id="%s"><status><basic>%s</basic></status><contact>%s</contact>`, bobTupleID, basic, xmlEscape(contact))
	if s.note != "" {
		fmt.Fprintf(&b, `<note xml:lang="en">%s</note>`, xmlEscape(s.note))
	}
	b.WriteString("</tuple>\n</presence>\n")
	return []byte(b.String())
}

func dialogKey(callID, tag string) string { return callID + "\x00" + tag }

// eventPackage is the package of an Event header ("" without one).
func eventPackage(req *sip.Request) string {
	h := req.GetHeader("Event")
	if h == nil {
		return ""
	}
	pkg, _, _ := strings.Cut(h.Value(), ";")
	return strings.ToLower(strings.TrimSpace(pkg))
}

func headerInt(m interface{ GetHeader(string) sip.Header }, name string, def int) int {
	h := m.GetHeader(name)
	if h == nil {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil {
		return def
	}
	return n
}

// hostPort is where to send a request for u.
func hostPort(u sip.Uri) string {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(port))
}

func uriTransport(u sip.Uri, def string) string {
	if u.UriParams != nil {
		if t, ok := u.UriParams.Get("transport"); ok && t != "" {
			return strings.ToUpper(t)
		}
	}
	return def
}

// spawn runs f on a goroutine that close waits for; false when closing.
func (a *agent) spawn(f func()) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil { // closing: wg.Wait may have begun
		return false
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
	return true
}

func (a *agent) port() int {
	_, p, _ := net.SplitHostPort(a.addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (a *agent) contactOf(user string) *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: a.port()}}
}

// --- bob's presence agent (notifier) ---

func (a *agent) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	respond := func(code int, reason string, hdrs ...sip.Header) {
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		_ = tx.Respond(res)
	}
	from, to := req.From(), req.To()
	if from == nil || to == nil || req.CallID() == nil || req.CSeq() == nil {
		respond(400, "Bad Request")
		return
	}
	who := from.Address.User + "@" + from.Address.Host
	if pkg := eventPackage(req); pkg != presenceEvent {
		a.con.printf("sip", "SUBSCRIBE from %s for event %q -> 489 Bad Event", who, pkg)
		respond(489, "Bad Event", sip.NewHeader("Allow-Events", presenceEvent))
		return
	}
	exp := headerInt(req, "Expires", maxSubExpires)
	if exp > 0 && exp < minSubExpires {
		respond(423, "Interval Too Brief", sip.NewHeader("Min-Expires", strconv.Itoa(minSubExpires)))
		return
	}
	exp = min(max(exp, 0), maxSubExpires)
	fromTag, _ := from.Params.Get("tag")
	toTag, _ := to.Params.Get("tag")
	callID := string(*req.CallID())
	ps := &a.pres

	var d *notifierDialog
	if toTag == "" {
		ruri := req.Recipient
		if ruri.User != "bob" {
			a.con.printf("sip", "SUBSCRIBE for %s@%s (from %s): the demo agent has presence for bob only -> 404 Not Found", ruri.User, ruri.Host, who)
			respond(404, "Not Found")
			return
		}
		c := req.Contact()
		if c == nil || fromTag == "" {
			respond(400, "Missing Contact or From tag")
			return
		}
		d = &notifierDialog{
			callID: callID, localTag: sip.GenerateTagN(10), remoteTag: fromTag,
			local:     sip.Uri{Scheme: "sip", User: to.Address.User, Host: to.Address.Host},
			remote:    from.Address,
			target:    c.Address,
			transport: uriTransport(c.Address, "UDP"),
			lastCSeq:  req.CSeq().SeqNo,
		}
		ps.mu.Lock()
		d.expires = time.Now().Add(time.Duration(exp) * time.Second)
		if exp > 0 {
			ps.notifiers[dialogKey(callID, d.localTag)] = d
		}
		ps.mu.Unlock()
	} else {
		ps.mu.Lock()
		d = ps.notifiers[dialogKey(callID, toTag)]
		ok := d != nil && d.remoteTag == fromTag
		if ok && req.CSeq().SeqNo <= d.lastCSeq {
			ps.mu.Unlock()
			respond(500, "CSeq Out Of Order")
			return
		}
		if ok {
			d.lastCSeq = req.CSeq().SeqNo
			d.expires = time.Now().Add(time.Duration(exp) * time.Second)
			if c := req.Contact(); c != nil {
				d.target = c.Address
			}
			if exp == 0 {
				delete(ps.notifiers, dialogKey(callID, toTag))
			}
		}
		ps.mu.Unlock()
		if !ok {
			a.con.printf("sip", "SUBSCRIBE from %s in an unknown dialog -> 481", who)
			respond(481, "Call/Transaction Does Not Exist")
			return
		}
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if toTag == "" {
		res.To().Params.Add("tag", d.localTag)
	}
	res.AppendHeader(a.contactOf(d.local.User))
	e := sip.ExpiresHeader(exp)
	res.AppendHeader(&e)
	what := "SUBSCRIBE"
	switch {
	case toTag != "" && exp == 0:
		what = "unSUBSCRIBE (Expires 0)"
	case toTag != "":
		what = "SUBSCRIBE refresh"
	case exp == 0:
		what = "SUBSCRIBE (a fetch, Expires 0)"
	}
	a.con.printf("sip", "bob's presence agent: %s from %s for %s@%s -> 200 OK, Expires %d", what, who, d.local.User, d.local.Host, exp)
	_ = tx.Respond(res)
	// The NOTIFY that follows every (re)SUBSCRIBE (RFC 6665 §4.2.1).
	a.spawn(func() { _, _ = a.notifyBob(d, exp == 0) })
}

// notifyBob sends d a NOTIFY with bob's state; final ends the subscription
// (terminated;reason=timeout). It returns the response code.
func (a *agent) notifyBob(d *notifierDialog, final bool) (int, error) {
	d.send.Lock()
	defer d.send.Unlock()
	ps := &a.pres
	ps.mu.Lock()
	st := ps.bob
	target := d.target
	left := int(time.Until(d.expires).Seconds())
	ps.mu.Unlock()
	state := "active;expires=" + strconv.Itoa(max(left, 1))
	if final || left <= 0 {
		state = "terminated;reason=timeout"
	}
	d.cseq++
	req := sip.NewRequest(sip.NOTIFY, target)
	fh := &sip.FromHeader{Address: d.local, Params: sip.NewParams()}
	fh.Params.Add("tag", d.localTag)
	req.AppendHeader(fh)
	th := &sip.ToHeader{Address: d.remote, Params: sip.NewParams()}
	th.Params.Add("tag", d.remoteTag)
	req.AppendHeader(th)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.cseq, MethodName: sip.NOTIFY})
	req.AppendHeader(a.contactOf(d.local.User))
	req.AppendHeader(sip.NewHeader("Event", presenceEvent))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	ct := sip.ContentTypeHeader(pidfType)
	req.AppendHeader(&ct)
	req.SetBody(bobPIDF("pres:"+d.local.User+"@"+d.local.Host, a.contactOf(d.local.User).Address.String(), st))
	req.SetTransport(d.transport)
	req.SetDestination(hostPort(target))
	ctx, cancel := context.WithTimeout(a.ctx, notifyDeadline)
	defer cancel()
	watcher := d.remote.User + "@" + d.remote.Host
	res, err := a.cli.Do(ctx, req)
	if err != nil {
		if a.ctx.Err() == nil {
			a.con.printf("sip", "bob's presence agent: NOTIFY to %s (%s, bob %s): %v", watcher, state, st, err)
		}
		return 0, err
	}
	a.con.printf("sip", "bob's presence agent: NOTIFY to %s (Subscription-State %s, bob %s) -> %d %s", watcher, state, st, res.StatusCode, res.Reason)
	if res.StatusCode >= 300 && res.StatusCode != 500 {
		// The watcher is gone (RFC 6665 §4.2.2).
		ps.mu.Lock()
		delete(ps.notifiers, dialogKey(d.callID, d.localTag))
		ps.mu.Unlock()
	}
	return res.StatusCode, nil
}

// setBob changes bob's presence and sends it to every watcher; it returns
// how many of them answered the NOTIFY with 200.
func (a *agent) setBob(open bool, note string) int {
	ps := &a.pres
	ps.mu.Lock()
	ps.bob = bobState{open: open, note: note}
	var ds []*notifierDialog
	for k, d := range ps.notifiers {
		if time.Now().Before(d.expires) {
			ds = append(ds, d)
		} else {
			delete(ps.notifiers, k) // its watcher did not refresh it
		}
	}
	ps.mu.Unlock()
	a.con.printf("sip", "SIP bob's presence is now %s (%d watcher(s))", bobState{open: open, note: note}, len(ds))
	var ok int
	for _, d := range ds {
		if code, err := a.notifyBob(d, false); err == nil && code == 200 {
			ok++
		}
	}
	return ok
}

// bobWatchers counts the live subscriptions to bob from watcher (a SIP URI
// user@host).
func (a *agent) bobWatchers(watcher string) int {
	ps := &a.pres
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := 0
	for _, d := range ps.notifiers {
		if strings.EqualFold(d.remote.User+"@"+d.remote.Host, watcher) && time.Now().Before(d.expires) {
			n++
		}
	}
	return n
}

// --- bob as a watcher (subscriber) ---

// watch makes from (one of the agent's SIP users) subscribe to to's
// presence, through stox; the NOTIFYs come to onNotify.
func (a *agent) watch(ctx context.Context, from, to string, expires int) (*sip.Response, error) {
	var fromURI, toURI sip.Uri
	if err := sip.ParseUri(from, &fromURI); err != nil {
		return nil, fmt.Errorf("from %q: %w", from, err)
	}
	if err := sip.ParseUri(to, &toURI); err != nil {
		return nil, fmt.Errorf("to %q: %w", to, err)
	}
	w := &watchDialog{
		callID:   "demo-watch-" + sip.GenerateTagN(16),
		localTag: sip.GenerateTagN(10),
		local:    fromURI,
		remote:   toURI,
		target:   toURI,
	}
	ps := &a.pres
	ps.mu.Lock()
	// Before the SUBSCRIBE: the first NOTIFY may overtake the 200.
	ps.watches[dialogKey(w.callID, w.localTag)] = w
	ps.mu.Unlock()
	res, err := a.subscribe(ctx, w, expires)
	if err != nil || res.StatusCode >= 300 {
		a.endWatch(w)
	}
	return res, err
}

// subscribe sends w's SUBSCRIBE (initial, refresh or, with expires 0, the
// end) and schedules the next refresh.
func (a *agent) subscribe(ctx context.Context, w *watchDialog, expires int) (*sip.Response, error) {
	w.refreshMu.Lock()
	defer w.refreshMu.Unlock()
	ps := &a.pres
	ps.mu.Lock()
	remoteTag, target, ended := w.remoteTag, w.target, w.ended
	ps.mu.Unlock()
	if ended {
		return nil, fmt.Errorf("the subscription to %s has ended", w.remote.String())
	}
	initial := remoteTag == ""
	w.cseq++
	ruri := target
	dest := a.stoxAddr // initial: to stox, as the outbound proxy would
	transport := "UDP"
	if !initial {
		dest, transport = hostPort(target), uriTransport(target, "UDP")
	} else {
		ruri = w.remote
	}
	req := sip.NewRequest(sip.SUBSCRIBE, ruri)
	fh := &sip.FromHeader{Address: w.local, Params: sip.NewParams()}
	fh.Params.Add("tag", w.localTag)
	req.AppendHeader(fh)
	th := &sip.ToHeader{Address: w.remote, Params: sip.NewParams()}
	if !initial {
		th.Params.Add("tag", remoteTag)
	}
	req.AppendHeader(th)
	cid := sip.CallIDHeader(w.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: w.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(a.contactOf(w.local.User))
	req.AppendHeader(sip.NewHeader("Event", presenceEvent))
	req.AppendHeader(sip.NewHeader("Accept", pidfType))
	e := sip.ExpiresHeader(expires)
	req.AppendHeader(&e)
	req.SetTransport(transport)
	req.SetDestination(dest)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := a.cli.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		return res, nil
	}
	granted := headerInt(res, "Expires", expires)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if to := res.To(); to != nil && w.remoteTag == "" {
		w.remoteTag, _ = to.Params.Get("tag")
	}
	if c := res.Contact(); c != nil {
		w.target = c.Address
	}
	if w.refresh != nil {
		w.refresh.Stop()
		w.refresh = nil
	}
	if granted > 0 && !w.ended {
		// Refresh at four fifths of the granted time (RFC 6665 §4.1.2.2).
		w.refresh = time.AfterFunc(time.Duration(granted)*time.Second*4/5, func() {
			a.spawn(func() {
				res, err := a.subscribe(a.ctx, w, expires)
				switch {
				case err != nil && a.ctx.Err() == nil:
					a.con.printf("sip", "SIP %s: refreshing the subscription to %s: %v", w.local.User, w.remote.String(), err)
				case err == nil:
					a.con.printf("sip", "SIP %s refreshed the subscription to %s: %d %s", w.local.User, w.remote.String(), res.StatusCode, res.Reason)
				}
			})
		})
	}
	return res, nil
}

// unwatch ends every subscription of bob's watcher (SUBSCRIBE Expires 0);
// the final NOTIFYs come to onNotify. It returns how many it ended.
func (a *agent) unwatch(ctx context.Context) int {
	ps := &a.pres
	ps.mu.Lock()
	var ws []*watchDialog
	for _, w := range ps.watches {
		if !w.ended && w.remoteTag != "" {
			ws = append(ws, w)
		}
	}
	ps.mu.Unlock()
	n := 0
	for _, w := range ws {
		a.con.printf("sip", "SIP %s unsubscribes from %s: SUBSCRIBE with Expires: 0", w.local.User, w.remote.String())
		res, err := a.subscribe(ctx, w, 0)
		switch {
		case err != nil:
			a.con.printf("sip", "SIP %s: unsubscribing from %s: %v", w.local.User, w.remote.String(), err)
		case res.StatusCode >= 300:
			a.con.printf("sip", "SIP %s: unsubscribing from %s: %d %s", w.local.User, w.remote.String(), res.StatusCode, res.Reason)
		default:
			n++
		}
	}
	return n
}

// headerValue is h's value, "none" without h.
func headerValue(h sip.Header) string {
	if h == nil {
		return "none"
	}
	return h.Value()
}

func (a *agent) endWatch(w *watchDialog) {
	ps := &a.pres
	ps.mu.Lock()
	defer ps.mu.Unlock()
	w.ended = true
	if w.refresh != nil {
		w.refresh.Stop()
		w.refresh = nil
	}
	delete(ps.watches, dialogKey(w.callID, w.localTag))
}

// onNotify takes the NOTIFYs of bob's subscriptions.
func (a *agent) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	respond := func(code int, reason string) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	}
	from, to := req.From(), req.To()
	if from == nil || to == nil || req.CallID() == nil || req.CSeq() == nil {
		respond(400, "Bad Request")
		return
	}
	fromTag, _ := from.Params.Get("tag")
	toTag, _ := to.Params.Get("tag")
	ps := &a.pres
	ps.mu.Lock()
	w := ps.watches[dialogKey(string(*req.CallID()), toTag)]
	code, reason := 200, "OK"
	switch {
	case w == nil:
		code, reason = 481, "Subscription Does Not Exist"
	case w.remoteTag != "" && w.remoteTag != fromTag:
		code, reason = 481, "Subscription Does Not Exist" // a second fork: not for the demo
	case w.lastNotify != 0 && req.CSeq().SeqNo <= w.lastNotify:
		code, reason = 500, "CSeq Out Of Order"
	case eventPackage(req) != presenceEvent:
		code, reason = 489, "Bad Event"
	}
	if code == 200 {
		w.remoteTag = fromTag
		w.lastNotify = req.CSeq().SeqNo
		if c := req.Contact(); c != nil {
			w.target = c.Address
		}
	}
	ps.mu.Unlock()
	if code != 200 {
		a.con.printf("sip", "NOTIFY from %s@%s -> %d %s", from.Address.User, from.Address.Host, code, reason)
		respond(code, reason)
		return
	}
	n := watchNotify{presentity: w.remote.String()}
	if h := req.GetHeader("Subscription-State"); h != nil {
		n.state = strings.TrimSpace(h.Value())
	}
	var perr error
	if body := req.Body(); len(body) > 0 {
		n.tuples, perr = parsePIDF(body)
	}
	respond(200, "OK")
	if perr != nil {
		a.con.printf("sip", "SIP %s got a NOTIFY for %s with a PIDF it cannot read: %v", w.local.User, n.presentity, perr)
	}
	a.con.printf("sip", "SIP %s (watching %s) got NOTIFY: Subscription-State %s, %s -> 200 OK", w.local.User, n.presentity, n.state, tuplesString(n.tuples))
	if n.stateName() == "terminated" {
		a.endWatch(w)
	}
	select {
	case ps.notifies <- n:
	default:
	}
}
