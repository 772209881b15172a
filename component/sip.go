package component

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

const nsXHTMLIM = "http://jabber.org/protocol/xhtml-im"

// retryAfter is the Retry-After (seconds) sent with 503 when the XMPP side
// cannot take more messages.
const retryAfter = "30"

// ReadyForInline reports whether HandleSIPMessage would write its stanza
// to the XMPP server at once, without waiting: the stream is up, nothing is
// queued and no earlier write is unfinished. It is sipside's
// WithInlineHandler check; HandleSIPMessage, called on sipside's read loop
// (sipside.OnReadLoop), never waits for the server.
func (g *Gateway) ReadyForInline() bool { return g.out.idle() }

// HandleSIPMessage is the sipside.MessageHandler: it turns a SIP MESSAGE into
// an XMPP <message/> (IM-07, TV-03) and decides the final response. sipside
// has already refused untrusted sources (403) and malformed requests (400);
// the rest of DESIGN.md's order is kept here: unserved domain or unknown user
// (404), unsupported body (415), size (413). 202 is answered once the stanza is
// written to the XMPP server or queued for it while the server is away.
func (g *Gateway) HandleSIPMessage(ctx context.Context, m *sipside.IncomingMessage) sipside.Reply {
	to, err := g.addr.XMPPUserJID(m.RequestURI)
	if err != nil {
		return g.refuseSIP(m, err)
	}
	from, err := g.addr.SIPUserJID(m.From)
	if err != nil {
		return g.refuseSIP(m, err)
	}
	if m.TooLarge {
		// sipside did not read a body over its limit; the type is still
		// judged first (415 before 413).
		if err := mapping.CheckContentType(m.ContentType); err != nil {
			return g.refuseSIP(m, err)
		}
		g.log.Info("SIP MESSAGE refused", "code", 413, "from", m.From, "to", m.RequestURI, "body_bytes", m.BodySize)
		g.count.sxRefused.Add(1)
		return sipside.Reply{Code: 413}
	}
	xm, err := g.addr.MessageFromSIP(mapping.SIPMessage{
		RequestURI:      m.RequestURI,
		From:            m.From,
		To:              m.To,
		CallID:          m.CallID,
		Subject:         m.Subject,
		ContentType:     m.ContentType,
		ContentLanguage: m.ContentLanguage,
		Body:            m.Body,
	})
	if err != nil {
		return g.refuseSIP(m, err)
	}
	xm.From, xm.To = from, to
	st := g.stanzaFromMessage(xm)
	b := st.Bytes()
	if len(b) > g.cfg.MaxStanzaSize {
		g.log.Info("SIP MESSAGE refused", "code", 413, "from", m.From, "to", m.RequestURI, "stanza_bytes", len(b), "limit", g.cfg.MaxStanzaSize)
		g.count.sxRefused.Add(1)
		return sipside.Reply{Code: 413}
	}
	send := g.out.send
	if sipside.OnReadLoop(ctx) {
		send = g.out.sendNow // ReadyForInline said it would be written at once
	}
	queued, err := send(b)
	if err != nil {
		g.log.Warn("SIP MESSAGE refused: XMPP side cannot take it", "code", 503, "from", m.From, "to", m.RequestURI, "err", err)
		g.count.sxRefused.Add(1)
		return sipside.Reply{Code: 503, Headers: map[string]string{"Retry-After": retryAfter}}
	}
	if g.log.Enabled(ctx, slog.LevelDebug) { // the arguments alone allocate
		g.log.Debug("SIP MESSAGE to XMPP", "from", from, "to", to, "id", xm.ID, "queued", queued)
	}
	if queued {
		g.count.sxQueued.Add(1)
	} else {
		g.count.sxAccepted.Add(1)
	}
	return sipside.Reply{Code: 202}
}

// refuseSIP maps a translation error to the SIP final response.
func (g *Gateway) refuseSIP(m *sipside.IncomingMessage, err error) sipside.Reply {
	r := sipReplyFor(err)
	g.log.Info("SIP MESSAGE refused", "code", r.Code, "from", m.From, "to", m.RequestURI, "source", m.Source.String(), "err", err)
	g.count.sxRefused.Add(1)
	return r
}

// stanzaFromMessage renders an S->X message (IM-07: no type attribute).
func (g *Gateway) stanzaFromMessage(xm mapping.XMPPMessage) *Element {
	e := NewElement(nsComponent, "message")
	// Sized once: from, to, id, type, xml:lang; thread, subject, bodies,
	// html (appending grew them step by step: three more allocations a
	// message).
	e.Attr = make([]xml.Attr, 0, 5)
	e.Children = make([]*Element, 0, 3+len(xm.Bodies))
	e.SetAttr("from", xm.From).SetAttr("to", xm.To).SetAttr("id", g.newID())
	if xm.Type != "" {
		e.SetAttr("type", xm.Type)
	}
	e.SetLang(xm.Lang)
	if xm.Thread != "" {
		e.Add(TextElement(nsComponent, "thread", xm.Thread))
	}
	if xm.Subject != "" {
		e.Add(TextElement(nsComponent, "subject", xm.Subject))
	}
	for _, b := range xm.Bodies {
		e.Add(TextElement(nsComponent, "body", b.Text)).SetLang(b.Lang)
	}
	if xm.XHTML != "" {
		// mapping gives the whole XHTML <body/>, namespace declared.
		e.Add(&Element{Space: nsXHTMLIM, Local: "html", Raw: xm.XHTML})
	}
	return e
}

// sipReplyFor maps an addressing or translation error to a SIP final
// response (DESIGN.md order of refusals; ADDR-04, ADDR-05, ADDR-14, IM-08).
func sipReplyFor(err error) sipside.Reply {
	r := sipside.Reply{Code: 400}
	switch {
	case errors.Is(err, mapping.ErrSIPS), errors.Is(err, mapping.ErrLoop):
		// ADDR-05: never translate sips: (RFC 7247 s8); and a SIP From that
		// claims a served XMPP domain is a loop or a spoof.
		r.Code = 403
	case errors.Is(err, mapping.ErrTel):
		r.Code = 416 // ADDR-04
	case errors.Is(err, mapping.ErrUnservedDomain), errors.Is(err, mapping.ErrNoUser), errors.Is(err, mapping.ErrForeignDomain):
		r.Code = 404
	case errors.Is(err, mapping.ErrUnsupportedType), errors.Is(err, mapping.ErrUnsupportedCharset):
		r.Code = 415 // IM-08, TV-05
		r.Headers = map[string]string{"Accept": mapping.AcceptHeader}
	case errors.Is(err, mapping.ErrMalformedURI), errors.Is(err, mapping.ErrMalformedJID), errors.Is(err, mapping.ErrBadBody):
		r.Code = 400 // ADDR-14
	}
	return r
}

// sipParties maps the parties of a SIP request that starts a dialog with an
// XMPP user: the XMPP user from the Request-URI (a full JID when it has a
// gr), and the SIP user from From as a bare JID and as its canonical AOR,
// the key of what the pair shares (presence subscriptions, chat sessions).
func (g *Gateway) sipParties(requestURI, from string) (user, sipJID, sipURI string, err error) {
	if user, err = g.addr.XMPPUserJID(requestURI); err != nil {
		return "", "", "", err
	}
	if sipJID, err = g.addr.SIPUserJID(from); err != nil {
		return "", "", "", err
	}
	sipJID = bareJID(sipJID)
	if sipURI, err = g.addr.SIPUserURI(sipJID); err != nil {
		return "", "", "", err
	}
	return user, sipJID, sipURI, nil
}

// xmppParties maps the parties of a stanza from an XMPP user to a SIP user:
// the XMPP user as a bare JID and as a SIP URI, the SIP user as a bare JID
// and as its canonical AOR.
func (g *Gateway) xmppParties(from, to string) (user, userURI, sipJID, sipURI string, err error) {
	user, sipJID = bareJID(from), bareJID(to)
	if userURI, err = g.addr.XMPPUserURI(user); err != nil {
		return "", "", "", "", err
	}
	if sipURI, err = g.addr.SIPUserURI(sipJID); err != nil {
		return "", "", "", "", err
	}
	return user, userURI, sipJID, sipURI, nil
}
