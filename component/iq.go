package component

import (
	"runtime/debug"
	"sort"
	"strings"

	"github.com/stox-gw/stox/mapping"
)

const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsGateway    = "jabber:iq:gateway"
	nsPing       = "urn:xmpp:ping"
	nsVersion    = "jabber:iq:version"
	// featureJIDEscaping is advertised because foreign SIP users are
	// XEP-0106-escaped into JID localparts (ADDR-12).
	featureJIDEscaping = `jid\20escaping`
)

// iqTarget says which JIDs an IQ handler serves.
type iqTarget int

const (
	targetComponent iqTarget = 1 << iota // the bare component domain
	targetUser                           // a SIP-user JID under the component
)

// iqHandler answers one IQ namespace. Its feature is advertised in disco#info
// for the targets it serves, so disco is derived from what is registered
// (STYLE.md, after mellium/xmpp), never written by hand.
type iqHandler struct {
	ns      string
	feature string
	targets iqTarget
	// handle returns the result payload (nil for an empty result) or an error.
	handle func(iq, query *Element) (*Element, *mapping.StanzaError)
}

func (g *Gateway) builtinIQHandlers() []iqHandler {
	return []iqHandler{
		{ns: nsDiscoInfo, feature: nsDiscoInfo, targets: targetComponent | targetUser, handle: g.discoInfo},
		{ns: nsDiscoItems, feature: nsDiscoItems, targets: targetComponent | targetUser, handle: g.discoItems},
		{ns: nsGateway, feature: nsGateway, targets: targetComponent, handle: g.iqGateway},
		{ns: nsPing, feature: nsPing, targets: targetComponent, handle: func(*Element, *Element) (*Element, *mapping.StanzaError) { return nil, nil }},
		{ns: nsVersion, feature: nsVersion, targets: targetComponent, handle: g.iqVersion},
	}
}

// features lists the disco features for a target, sorted by octets (as
// XEP-0115 hashing wants them).
func (g *Gateway) features(t iqTarget) []string {
	var fs []string
	for _, h := range g.iqs {
		if h.targets&t != 0 && h.feature != "" {
			fs = append(fs, h.feature)
		}
	}
	if t == targetComponent {
		fs = append(fs, featureJIDEscaping)
	}
	sort.Strings(fs)
	return fs
}

// handleIQ answers every get/set exactly once (COMP-05) and feeds results to
// whoever waits for them (the watchdog's pings).
func (g *Gateway) handleIQ(iq *Element) {
	typ := iq.AttrValue("type")
	switch typ {
	case "result", "error":
		id := iq.AttrValue("id")
		g.pingMu.Lock()
		ch := g.pings[id]
		g.pingMu.Unlock()
		if ch != nil {
			select {
			case ch <- iq:
			default:
			}
			return
		}
		g.log.Debug("unsolicited IQ response ignored", "id", id, "from", iq.AttrValue("from"))
		return
	case "get", "set":
		defer g.count.iqs.Add(1)
	default:
		g.replyError(iq, mapping.StanzaError{Type: "modify", Condition: "bad-request"})
		return
	}
	if len(iq.Children) != 1 {
		// RFC 6120 s8.2.3: a get/set holds exactly one payload.
		g.replyError(iq, mapping.StanzaError{Type: "modify", Condition: "bad-request"})
		return
	}
	query := iq.Children[0]
	target, ok := g.targetOf(iq.AttrValue("to"))
	if !ok {
		g.replyError(iq, mapping.StanzaError{Type: "cancel", Condition: "item-not-found"})
		return
	}
	for _, h := range g.iqs {
		if h.ns != query.Space || h.targets&target == 0 {
			continue
		}
		payload, serr := g.callIQ(h, iq, query)
		if serr != nil {
			g.replyError(iq, *serr)
			return
		}
		res := replyTo(iq, "result")
		if payload != nil {
			res.Add(payload)
		}
		g.sendLogged(res)
		return
	}
	g.replyError(iq, mapping.StanzaError{Type: "cancel", Condition: "service-unavailable"})
}

func (g *Gateway) callIQ(h iqHandler, iq, query *Element) (payload *Element, serr *mapping.StanzaError) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("IQ handler panicked", "ns", h.ns, "panic", r, "stack", string(debug.Stack()))
			payload, serr = nil, &mapping.StanzaError{Type: "cancel", Condition: "internal-server-error"}
		}
	}()
	return h.handle(iq, query)
}

// targetOf classifies the to address of an IQ: the bare component domain, or
// a JID under it that maps to a SIP user.
func (g *Gateway) targetOf(to string) (iqTarget, bool) {
	local, domain, resource := splitJID(to)
	if domain != g.cfg.Component {
		return 0, false
	}
	if local == "" {
		return targetComponent, resource == ""
	}
	if _, err := g.addr.SIPUserURI(to); err != nil {
		return 0, false
	}
	return targetUser, true
}

func (g *Gateway) discoInfo(iq, query *Element) (*Element, *mapping.StanzaError) {
	node := query.AttrValue("node")
	if node != "" {
		// No nodes yet (ad-hoc commands come later): COMP-11.
		return nil, &mapping.StanzaError{Type: "cancel", Condition: "item-not-found"}
	}
	res := NewElement(nsDiscoInfo, "query")
	target, _ := g.targetOf(iq.AttrValue("to"))
	id := NewElement(nsDiscoInfo, "identity")
	if target == targetComponent {
		// D3/COMP-10: the registrar's type for SIP/SIMPLE gateways is "simple".
		id.SetAttr("category", "gateway").SetAttr("type", "simple").SetAttr("name", "SIP Gateway")
	} else {
		id.SetAttr("category", "client").SetAttr("type", "phone").SetAttr("name", "SIP user")
	}
	res.Add(id)
	for _, f := range g.features(target) {
		res.Add(NewElement(nsDiscoInfo, "feature").SetAttr("var", f))
	}
	return res, nil
}

func (g *Gateway) discoItems(_, query *Element) (*Element, *mapping.StanzaError) {
	if query.AttrValue("node") != "" {
		return nil, &mapping.StanzaError{Type: "cancel", Condition: "item-not-found"}
	}
	return NewElement(nsDiscoItems, "query"), nil // COMP-11: empty is fine
}

// iqGateway implements XEP-0100 s6.3 (ADDR-13, TV-13).
func (g *Gateway) iqGateway(iq, query *Element) (*Element, *mapping.StanzaError) {
	res := NewElement(nsGateway, "query")
	if iq.AttrValue("type") == "get" {
		res.Add(TextElement(nsGateway, "desc", "Enter the SIP address of the contact (user@host or sip:user@host)."))
		res.Add(TextElement(nsGateway, "prompt", "SIP address"))
		return res, nil
	}
	prompt := query.ChildText(nsGateway, "prompt")
	jid, err := g.addr.PromptJID(prompt)
	if err != nil {
		return nil, &mapping.StanzaError{Type: "modify", Condition: "jid-malformed", Text: err.Error()}
	}
	res.Add(TextElement(nsGateway, "jid", jid))
	return res, nil
}

func (g *Gateway) iqVersion(*Element, *Element) (*Element, *mapping.StanzaError) {
	res := NewElement(nsVersion, "query")
	res.Add(TextElement(nsVersion, "name", "stox"))
	res.Add(TextElement(nsVersion, "version", g.cfg.Version))
	return res, nil
}

// replyTo starts a response to a stanza: same element and id, from/to swapped.
func replyTo(e *Element, typ string) *Element {
	r := NewElement(nsComponent, e.Local)
	r.SetAttr("type", typ)
	if id := e.AttrValue("id"); id != "" {
		r.SetAttr("id", id)
	}
	r.SetAttr("from", e.AttrValue("to"))
	r.SetAttr("to", e.AttrValue("from"))
	return r
}

// errorElement renders a stanza error (RFC 6120 s8.3, ERR-02).
func errorElement(se mapping.StanzaError, by string) *Element {
	typ := se.Type
	if typ == "" {
		typ = mapping.ErrorTypeFor(se.Condition)
	}
	e := NewElement(nsComponent, "error").SetAttr("type", typ)
	if by != "" {
		e.SetAttr("by", by)
	}
	cond := NewElement(nsStanzas, se.Condition)
	if se.Condition == "gone" && se.Gone != "" {
		cond.Text = se.Gone
	}
	e.Add(cond)
	if se.Text != "" {
		e.Add(TextElement(nsStanzas, "text", se.Text))
	}
	return e
}

// replyError answers a stanza with an error, never an error with an error
// (ERR-03).
func (g *Gateway) replyError(e *Element, se mapping.StanzaError) {
	if e.AttrValue("type") == "error" {
		return
	}
	r := replyTo(e, "error")
	r.Add(errorElement(se, g.cfg.Component))
	g.sendLogged(r)
}

// sendLogged sends a stanza the gateway originates; a refusal is logged.
func (g *Gateway) sendLogged(e *Element) {
	if _, err := g.send(e); err != nil {
		g.log.Warn("stanza to XMPP not sent", "stanza", e.Local, "to", e.AttrValue("to"), "id", e.AttrValue("id"), "err", err)
	}
}

func isRequest(e *Element) bool {
	t := e.AttrValue("type")
	return e.Local == "iq" && (t == "get" || t == "set")
}

// splitJID splits local@domain/resource without validating.
func splitJID(j string) (local, domain, resource string) {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j, resource = j[:i], j[i+1:]
	}
	if i := strings.IndexByte(j, '@'); i >= 0 {
		local, j = j[:i], j[i+1:]
	}
	return local, j, resource
}

func bareJID(j string) string {
	local, domain, _ := splitJID(j)
	if local == "" {
		return domain
	}
	return local + "@" + domain
}
