package component

import (
	"context"
	"errors"
	"log/slog"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

// outgoing is one XMPP message on its way to SIP.
type outgoing struct {
	stanza *Element // the original, for the error reply
	sip    mapping.SIPMessage
	quiet  bool // headline: failures are logged, never answered
}

// handleMessage translates an XMPP <message/> to SIP MESSAGE (IM-01..IM-12).
func (g *Gateway) handleMessage(e *Element) {
	typ := e.AttrValue("type")
	switch typ {
	case "error":
		// ERR-03 and IM-13: an error about a message that came from SIP cannot
		// reach the SIP sender any more (it got 202); it is only logged.
		cond := ""
		if er := e.Child(e.Space, "error"); er != nil && len(er.Children) > 0 {
			cond = er.Children[0].Local
		}
		g.log.Info("XMPP refused a message from SIP", "from", e.AttrValue("from"), "to", e.AttrValue("to"), "id", e.AttrValue("id"), "condition", cond)
		return
	case "groupchat":
		// IM-02: groupchat belongs to the MUC gateway (not built yet).
		g.replyError(e, mapping.StanzaError{Type: "cancel", Condition: "feature-not-implemented", Text: "groupchat is not supported yet"})
		return
	case "", "normal", "chat", "headline":
	default:
		g.replyError(e, mapping.StanzaError{Type: "modify", Condition: "bad-request", Text: "unknown message type"})
		return
	}
	xm := messageFromStanza(e)
	if g.chats != nil && g.chats.route(e, xm) {
		return // a chat session carries it (RFC 7573)
	}
	g.pageMode(e, xm)
}

// pageMode sends an XMPP message as a SIP MESSAGE (RFC 7572).
func (g *Gateway) pageMode(e *Element, xm mapping.XMPPMessage) {
	typ := e.AttrValue("type")
	sm, err := g.addr.MessageToSIP(xm)
	if err != nil {
		if errors.Is(err, mapping.ErrNoBody) {
			// IM-10: chat states or receipts alone never become an empty MESSAGE.
			g.log.Debug("message without body not sent to SIP", "from", xm.From, "to", xm.To)
			return
		}
		g.log.Info("message to SIP refused", "from", xm.From, "to", xm.To, "id", xm.ID, "err", err)
		g.count.xsRefused.Add(1)
		if typ != "headline" {
			g.replyError(e, stanzaErrorFor(err))
		}
		return
	}
	o := &outgoing{stanza: e, sip: sm, quiet: typ == "headline"}
	if err := g.sessions.submit(bareJID(xm.From), o); err != nil {
		g.log.Warn("message to SIP refused", "from", xm.From, "to", xm.To, "id", xm.ID, "err", err)
		g.count.xsRefused.Add(1)
		if !o.quiet {
			g.replyError(e, stanzaErrorFor(err))
		}
	}
}

// messageFromStanza reads the fields RFC 7572 maps (IM-03).
func messageFromStanza(e *Element) mapping.XMPPMessage {
	m := mapping.XMPPMessage{
		ID:   e.AttrValue("id"),
		From: e.AttrValue("from"),
		To:   e.AttrValue("to"),
		Type: e.AttrValue("type"),
		Lang: e.Lang(),
	}
	for _, c := range e.Children {
		if c.Space != e.Space {
			continue
		}
		switch c.Local {
		case "body":
			m.Bodies = append(m.Bodies, mapping.Body{Lang: c.Lang(), Text: c.Text})
		case "subject":
			if m.Subject == "" {
				m.Subject = c.Text
			}
		case "thread":
			m.Thread = c.Text
		}
	}
	return m
}

// deliver sends one message to SIP and answers failures (ERR-04). It runs on
// a goroutine owned by the session.
func (g *Gateway) deliver(ctx context.Context, o *outgoing) {
	res, err := g.sip.SendMessage(ctx, g.sipMessage(o))
	g.delivered(o, res, err)
}

// startDeliver starts sending one message to SIP without a goroutine that
// waits for it, when the SIP side can (sipStarter): then stopped is called
// once with the outcome, from the SIP side's goroutine, and must not block;
// the caller passes the outcome to delivered. It reports whether it started.
// With a sipQueuer the request may wait for flushStarted.
func (g *Gateway) startDeliver(ctx context.Context, o *outgoing, stopped func(sipside.Result, error)) bool {
	if g.queue != nil {
		return g.queue.QueueMessage(ctx, g.sipMessage(o), stopped)
	}
	return g.start != nil && g.start.StartMessage(ctx, g.sipMessage(o), stopped)
}

// flushStarted sends the requests startDeliver held back.
func (g *Gateway) flushStarted() {
	if g.queue != nil {
		g.queue.FlushMessages()
	}
}

func (g *Gateway) sipMessage(o *outgoing) *sipside.OutgoingMessage {
	return &sipside.OutgoingMessage{
		Timeout:         g.cfg.SendTimeout,
		RequestURI:      o.sip.RequestURI,
		From:            o.sip.From,
		To:              o.sip.To,
		CallID:          o.sip.CallID,
		Subject:         o.sip.Subject,
		ContentType:     o.sip.ContentType,
		ContentLanguage: o.sip.ContentLanguage,
		Body:            o.sip.Body,
	}
}

// delivered counts and logs the outcome of a send and answers a failure
// with its stanza error (ERR-04).
func (g *Gateway) delivered(o *outgoing, res sipside.Result, err error) {
	var se mapping.StanzaError
	switch {
	case err != nil:
		se = stanzaErrorFor(err)
	case res.Code >= 300:
		se = g.addr.ErrorForSIP(res.Code, res.Reason, res.Contact)
	default:
		g.count.xsDelivered.Add(1)
		// Guarded: the arguments alone cost an allocation per message.
		if g.log.Enabled(context.Background(), slog.LevelDebug) {
			g.log.Debug("message delivered to SIP", "from", o.sip.From, "to", o.sip.RequestURI, "code", res.Code, "parts", res.Parts)
		}
		return
	}
	g.count.xsFailed.Add(1)
	attrs := []any{"from", o.stanza.AttrValue("from"), "to", o.sip.RequestURI, "id", o.stanza.AttrValue("id"), "condition", se.Condition}
	if err != nil {
		attrs = append(attrs, "err", err)
	} else {
		attrs = append(attrs, "code", res.Code)
	}
	g.log.Info("message to SIP failed", attrs...)
	if !o.quiet {
		g.replyError(o.stanza, se)
	}
}

// stanzaErrorFor is the one place that turns a Go error into a stanza error
// (STYLE.md, after slidge).
func stanzaErrorFor(err error) mapping.StanzaError {
	var se mapping.StanzaError
	switch {
	case errors.Is(err, sipside.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return mapping.ErrorForTimeout()
	case errors.Is(err, sipside.ErrTooLarge):
		se = mapping.StanzaError{Condition: "policy-violation", Text: "message too large for page mode"}
	case errors.Is(err, sipside.ErrTransport):
		se = mapping.StanzaError{Condition: "remote-server-not-found", Text: "SIP next hop unreachable"}
	case errors.Is(err, mapping.ErrUnservedDomain):
		se = mapping.StanzaError{Condition: "forbidden", Text: "sender's domain is not served by this gateway"}
	case errors.Is(err, mapping.ErrForeignDomain), errors.Is(err, mapping.ErrLoop):
		se = mapping.StanzaError{Condition: "item-not-found", Text: "SIP users of other domains are not reachable through this gateway"}
	case errors.Is(err, mapping.ErrMalformedJID), errors.Is(err, mapping.ErrMalformedURI), errors.Is(err, mapping.ErrNoUser):
		se = mapping.StanzaError{Condition: "jid-malformed"}
	case errors.Is(err, mapping.ErrNotTranslatable):
		se = mapping.StanzaError{Condition: "feature-not-implemented"}
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrOutageTooLong):
		se = mapping.StanzaError{Condition: "resource-constraint", Text: "too many messages waiting"}
	case errors.Is(err, ErrClosed), errors.Is(err, context.Canceled):
		se = mapping.StanzaError{Condition: "service-unavailable", Text: "gateway shutting down"}
	default:
		se = mapping.StanzaError{Condition: "internal-server-error"}
	}
	se.Type = mapping.ErrorTypeFor(se.Condition)
	return se
}
