package sipside

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Dialog is the state of one SIP dialog (RFC 3261 §12) as the caller keeps
// it: sipside holds no dialog state of its own, so a Dialog can be stored
// (it marshals to JSON) and used again after a restart. Local is our side,
// Remote the peer, whichever side created the dialog.
type Dialog struct {
	CallID    string `json:"call_id"`
	LocalURI  string `json:"local_uri"`
	LocalTag  string `json:"local_tag"`
	RemoteURI string `json:"remote_uri"`
	// RemoteTag is empty until the peer's first response or request in the
	// dialog (an outgoing initial SUBSCRIBE waits for it).
	RemoteTag string `json:"remote_tag,omitempty"`
	// RemoteTarget is the peer's Contact URI: the Request-URI of our
	// requests in the dialog (RFC 3261 §12.2.1.1). Empty before the dialog
	// is established: requests then go to RemoteURI.
	RemoteTarget string `json:"remote_target,omitempty"`
	// RouteSet is the dialog's route set in the order of our Route headers
	// (RFC 3261 §12.1.1, §12.1.2).
	RouteSet []string `json:"route_set,omitempty"`
	// LocalCSeq is the CSeq of our last request in the dialog.
	LocalCSeq uint32 `json:"local_cseq"`
	// RemoteCSeq is the CSeq of the peer's last request (0: none yet).
	RemoteCSeq uint32 `json:"remote_cseq,omitempty"`
	// Event is the Event header value of the subscription, with its id
	// parameter if any ("presence", "presence;id=7"; RFC 6665 §8.2.1).
	Event string `json:"event,omitempty"`
}

// NewDialog starts the state of a dialog we create (an outgoing initial
// SUBSCRIBE): a fresh Call-ID and local tag, CSeq 0. The URIs are checked
// when a request is sent.
func NewDialog(localURI, remoteURI, event string) Dialog {
	return Dialog{CallID: token(), LocalURI: localURI, LocalTag: token(), RemoteURI: remoteURI, Event: event}
}

// Established reports whether the peer's tag is known.
func (d *Dialog) Established() bool { return d.RemoteTag != "" }

// DialogRequest is a SUBSCRIBE or NOTIFY to send in (or, for the initial
// SUBSCRIBE, to create) a dialog.
type DialogRequest struct {
	Method string // "SUBSCRIBE" or "NOTIFY"
	// Expires is the SUBSCRIBE's Expires (0 unsubscribes; RFC 6665
	// §4.1.2.3). Not used for NOTIFY.
	Expires int
	// Accept is the SUBSCRIBE's Accept value ("" for none).
	Accept string
	// SubscriptionState is the NOTIFY's Subscription-State value, as
	// mapping.SubscriptionState.Format writes it (RFC 6665 §8.2.3).
	SubscriptionState string
	ContentType       string // "" with an empty body
	ContentLanguage   string
	Body              []byte
}

// DialogResult is the final response to a DialogRequest.
type DialogResult struct {
	Result
	// Dialog is the dialog after the request: LocalCSeq advanced; a 2xx to
	// an initial SUBSCRIBE fills RemoteTag, RemoteTarget and RouteSet
	// (RFC 3261 §12.1.2), and a 2xx in the dialog updates RemoteTarget
	// from its Contact (RFC 6665 §4.1.2.2).
	Dialog Dialog
	// Expires is the response's Expires header, -1 when absent.
	Expires int
	// MinExpires is the Min-Expires of a 423, 0 when absent.
	MinExpires int
	// RetryAfter is the Retry-After of the response in seconds, 0 when
	// absent.
	RetryAfter int
}

// SendInDialog sends one SUBSCRIBE or NOTIFY and waits for its final
// response. With d.RemoteTag empty it is an initial SUBSCRIBE (no To tag,
// to d.RemoteURI through the outbound proxy); otherwise it goes in the
// dialog: Request-URI the remote target, Route headers the route set, next
// hop the first route (loose routing, RFC 3261 §12.2.1.1) or the remote
// target; the outbound proxy is not used for in-dialog requests with a
// route set. Every request carries Contact (our listener for its
// transport) and Event (RFC 6665 §8.2.1). Over UDP a request larger than
// 1300 bytes goes over TCP to the same next hop (D1). Errors are those of
// SendMessage.
func (u *UA) SendInDialog(ctx context.Context, d Dialog, r DialogRequest) (DialogResult, error) {
	out := DialogResult{Dialog: d, Expires: -1}
	u.mu.Lock()
	st, closed := u.state, u.closed
	if !closed && st != nil {
		u.wg.Add(1)
	}
	u.mu.Unlock()
	switch {
	case closed:
		return out, ErrClosed
	case st == nil:
		return out, ErrNotStarted
	}
	defer u.leave()

	method := sip.RequestMethod(r.Method)
	if method != sip.SUBSCRIBE && method != sip.NOTIFY {
		return out, fmt.Errorf("%w: method %q", ErrHeaderValue, r.Method)
	}
	if method == sip.NOTIFY && !d.Established() {
		return out, fmt.Errorf("%w: NOTIFY outside a dialog", ErrHeaderValue)
	}
	req, hop, err := u.buildInDialog(&d, method, &r)
	if err != nil {
		return out, err
	}
	select {
	case u.slots <- struct{}{}:
	case <-ctx.Done():
		return out, u.ctxErr(ctx, "waiting for a transaction slot")
	case <-u.ctx.Done():
		return out, ErrClosed
	}
	defer func() { <-u.slots }()

	var tg target
	if hop == nil {
		tg, err = u.resolveTarget(ctx, &req.Recipient)
	} else {
		tg, err = u.resolveHop(ctx, hop)
	}
	if err != nil {
		return out, err
	}
	u.finish(st, req, tg)
	if tg.transport == "UDP" && requestSize(req)+sentByMargin(st, tg) > udpSizeLimit {
		tg.transport = "TCP" // D1: same next hop, over TCP
		u.finish(st, req, tg)
	}
	d.LocalCSeq = req.CSeq().SeqNo
	out.Dialog = d
	res, err := u.transactFull(ctx, req)
	if err != nil {
		return out, err
	}
	out.Result = resultOf(res)
	out.Expires = intHeader(res, "expires", -1)
	out.MinExpires = intHeader(res, "min-expires", 0)
	out.RetryAfter = intHeader(res, "retry-after", 0)
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		if !d.Established() {
			if to := res.To(); to != nil {
				tag, _ := to.Params.Get("tag")
				d.RemoteTag = strings.Clone(tag) // not a slice of the response
			}
			// UAC route set: Record-Route of the 2xx, reversed.
			rr := res.GetHeaders("Record-Route")
			d.RouteSet = d.RouteSet[:0]
			for i := len(rr) - 1; i >= 0; i-- {
				if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
					d.RouteSet = append(d.RouteSet, h.Address.String())
				}
			}
		}
		if c := res.Contact(); c != nil {
			d.RemoteTarget = c.Address.String()
		}
		out.Dialog = d
	}
	return out, nil
}

// buildInDialog makes the request for d and r, with every header set
// except Via and Contact (finish adds them once the transport is known). It
// returns the next hop when the route set decides it (nil: resolve the
// Request-URI, through the outbound proxy).
func (u *UA) buildInDialog(d *Dialog, method sip.RequestMethod, r *DialogRequest) (*sip.Request, *sip.Uri, error) {
	for _, v := range []string{d.Event, r.Accept, r.SubscriptionState, r.ContentLanguage} {
		if hasCtl(v) {
			return nil, nil, fmt.Errorf("%w: control character in a dialog value", ErrHeaderValue)
		}
	}
	if d.Event == "" {
		return nil, nil, fmt.Errorf("%w: dialog without an event", ErrHeaderValue)
	}
	if r.ContentType != "" && !isMediaType(r.ContentType) {
		return nil, nil, fmt.Errorf("%w: Content-Type %q", ErrHeaderValue, r.ContentType)
	}
	if len(r.Body) > 0 && r.ContentType == "" {
		return nil, nil, fmt.Errorf("%w: a body without a Content-Type", ErrHeaderValue)
	}
	req, hop, err := u.dialogRequest(d, method, d.LocalCSeq+1)
	if err != nil {
		return nil, nil, err
	}
	req.AppendHeader(sip.NewHeader("Event", d.Event))
	switch method {
	case sip.SUBSCRIBE:
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(max(r.Expires, 0))))
		if r.Accept != "" {
			req.AppendHeader(sip.NewHeader("Accept", r.Accept))
		}
	case sip.NOTIFY:
		if r.SubscriptionState == "" {
			return nil, nil, fmt.Errorf("%w: NOTIFY without Subscription-State", ErrHeaderValue)
		}
		req.AppendHeader(sip.NewHeader("Subscription-State", r.SubscriptionState))
	}
	req.AppendHeader(sip.NewHeader("Allow-Events", strings.Join(u.events(), ", ")))
	if r.ContentType != "" {
		ct := sip.ContentTypeHeader(r.ContentType)
		req.AppendHeader(&ct)
	}
	if r.ContentLanguage != "" {
		if err := checkLanguage(r.ContentLanguage); err != nil {
			return nil, nil, err
		}
		req.AppendHeader(sip.NewHeader("Content-Language", r.ContentLanguage))
	}
	req.SetBody(r.Body)
	return req, hop, nil
}

// dialogRequest starts a request in d (or, before the peer's tag is
// known, the initial request that creates it): Max-Forwards, Route, From,
// To, Call-ID, CSeq and User-Agent, checked. In an established dialog the
// Request-URI is the remote target and the Route headers the route set,
// the next hop its first route (loose routing) or, for a strict router,
// the route itself with the remote target as last Route (RFC 3261
// §12.2.1.1); before, the Request-URI is the remote URI, through the
// outbound proxy (hop nil: resolve it as any request).
func (u *UA) dialogRequest(d *Dialog, method sip.RequestMethod, cseq uint32) (*sip.Request, *sip.Uri, error) {
	local, err := parseURI("local URI", d.LocalURI)
	if err != nil {
		return nil, nil, err
	}
	remote, err := parseURI("remote URI", d.RemoteURI)
	if err != nil {
		return nil, nil, err
	}
	if err := checkCallID(d.CallID); err != nil {
		return nil, nil, err
	}
	if hasCtl(d.LocalTag) || hasCtl(d.RemoteTag) || d.LocalTag == "" {
		return nil, nil, fmt.Errorf("%w: dialog tags", ErrHeaderValue)
	}
	ruri := remote
	var hop *sip.Uri
	var routes []sip.Uri
	if d.Established() {
		if d.RemoteTarget != "" {
			if ruri, err = parseURI("remote target", d.RemoteTarget); err != nil {
				return nil, nil, err
			}
		}
		for _, s := range d.RouteSet {
			ru, err := parseURI("route", s)
			if err != nil {
				return nil, nil, err
			}
			routes = append(routes, ru)
		}
		switch {
		case len(routes) > 0 && routes[0].UriParams.Has("lr"):
			hop = &routes[0]
		case len(routes) > 0:
			// Strict router: it becomes the Request-URI and the remote
			// target the last route.
			first := routes[0]
			routes = append(routes[1:], ruri)
			ruri = first
			hop = &ruri
		default:
			hop = &ruri
		}
	}
	req := sip.NewRequest(method, ruri)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	switch {
	case len(routes) > 0:
		for i := range routes {
			req.AppendHeader(&sip.RouteHeader{Address: routes[i]})
		}
	case !d.Established() && u.route != nil:
		req.AppendHeader(&sip.RouteHeader{Address: *u.route})
	}
	from := &sip.FromHeader{Address: local, Params: sip.NewParams()}
	from.Params.Add("tag", d.LocalTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: remote, Params: sip.NewParams()}
	if d.RemoteTag != "" {
		to.Params.Add("tag", d.RemoteTag)
	}
	req.AppendHeader(to)
	callID := sip.CallIDHeader(d.CallID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	req.AppendHeader(sip.NewHeader("User-Agent", u.uaString))
	return req, hop, nil
}

// finish sets the transport-dependent parts of a request: Via (sent-by our
// listener of that transport, a fresh branch), Contact, destination and, for
// UDP, the source socket. It replaces what an earlier call set.
func (u *UA) finish(st *startedState, req *sip.Request, tg target) {
	req.RemoveHeader("Via")
	req.RemoveHeader("Contact")
	req.PrependHeader(newVia(st, tg.transport))
	if c := u.contact(st, req.From().Address.User, tg.transport); c != nil {
		req.AppendHeader(c)
	}
	req.SetTransport(tg.transport)
	req.SetDestination(tg.dest)
	req.Laddr = sip.Addr{}
	if tg.transport == "UDP" && st.udpLaddr.IP != nil {
		st.udpLaddr.Copy(&req.Laddr)
	}
}

// contact is our Contact for requests and responses in dialogs: the user
// part of our URI at our listener of that transport (RFC 3261 §8.1.1.8).
// Without a listener of that transport it falls back to the first one.
func (u *UA) contact(st *startedState, user, transport string) *sip.ContactHeader {
	sb, ok := st.sentBy[transport]
	if !ok {
		for _, tp := range []string{"UDP", "TCP", "TLS"} {
			if sb, ok = st.sentBy[tp]; ok {
				transport = tp
				break
			}
		}
	}
	if !ok {
		return nil
	}
	host := sb.host
	if host == "" {
		host = u.cfg.domain
	}
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host, Port: sb.port, UriParams: sip.NewParams()}}
	if transport == "TLS" {
		c.Address.Scheme = "sips"
	} else if transport != "UDP" {
		c.Address.UriParams.Add("transport", strings.ToLower(transport))
	}
	return c
}

// transactFull is transact returning the final response itself.
func (u *UA) transactFull(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	var final *sip.Response
	_, err := u.transactWith(ctx, req, func(res *sip.Response) { final = res })
	if err != nil {
		return nil, err
	}
	return final, nil
}

// intHeader reads a delta-seconds header of a response, or def.
func intHeader(res *sip.Response, name string, def int) int {
	h := res.GetHeader(name)
	if h == nil {
		return def
	}
	v := strings.TrimSpace(h.Value())
	if i := strings.IndexAny(v, " ;("); i >= 0 {
		v = v[:i] // Retry-After: 120 (comment);duration=60
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return def
	}
	return n
}
