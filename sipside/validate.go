package sipside

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// checkRequest validates what sipgo's parser leaves unchecked. It returns 0
// for a good request, else the status code and the reason phrase of the
// refusal. It only reads req.
//
// Checks (RFC 3261 §8.2, §8.1.1, §16.3 item 3 for Max-Forwards, RFC 5393;
// CHECKLIST ADDR-15):
//   - SIP/2.0 only (505);
//   - exactly one From, To, Call-ID, CSeq, at least one Via; at most one
//     Max-Forwards, Content-Length, Content-Type; each well formed (400);
//   - the CSeq method equals the request method (400);
//   - Content-Length equals the body length (400; on streams the
//     Content-Length frames the message, so this catches datagrams only);
//   - no control character other than HTAB in a header value we hand on,
//     which includes a bare LF that sipgo keeps inside a value (400);
//   - a sip: or sips: Request-URI (416, ADDR-04);
//   - Max-Forwards 0 on anything but OPTIONS (483): we are a gateway and
//     would forward the request into XMPP. A missing Max-Forwards is
//     accepted, as RFC 3261 §16.3 does for proxies.
func checkRequest(req *sip.Request) (int, string) {
	if req.SipVersion != "SIP/2.0" {
		return 505, "Version Not Supported"
	}
	var nFrom, nTo, nCallID, nCSeq, nVia, nMaxFwd, nCL, nCT int
	for _, h := range req.Headers() {
		switch h := h.(type) {
		case *sip.FromHeader:
			nFrom++
			if hasCtlNoTab(h.DisplayName) || uriHasCtl(&h.Address) {
				return 400, "Control Character In From"
			}
		case *sip.ToHeader:
			nTo++
			if hasCtlNoTab(h.DisplayName) || uriHasCtl(&h.Address) {
				return 400, "Control Character In To"
			}
		case *sip.CallIDHeader:
			nCallID++
			if hasCtlNoTab(string(*h)) {
				return 400, "Control Character In Call-ID"
			}
		case *sip.CSeqHeader:
			nCSeq++
		case *sip.ViaHeader:
			nVia++
		case *sip.MaxForwardsHeader:
			nMaxFwd++
		case *sip.ContentLengthHeader:
			nCL++
		case *sip.ContentTypeHeader:
			nCT++
			if hasCtlNoTab(string(*h)) {
				return 400, "Control Character In Content-Type"
			}
		case *sip.ContactHeader, *sip.RouteHeader, *sip.RecordRouteHeader,
			*sip.ReferToHeader, *sip.ReferredByHeader:
			// Parsed by sipgo; not handed on.
		default:
			name := h.Name()
			switch name {
			// lenientHeaders keeps a header that failed to parse under
			// its canonical name.
			case "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type":
				return 400, "Malformed " + name
			}
			if hasCtlNoTab(h.Value()) {
				return 400, "Control Character In Header"
			}
		}
	}
	switch {
	case nFrom == 0:
		return 400, "Missing From"
	case nFrom > 1:
		return 400, "Duplicate From"
	case nTo == 0:
		return 400, "Missing To"
	case nTo > 1:
		return 400, "Duplicate To"
	case nCallID == 0:
		return 400, "Missing Call-ID"
	case nCallID > 1:
		return 400, "Duplicate Call-ID"
	case nCSeq == 0:
		return 400, "Missing CSeq"
	case nCSeq > 1:
		return 400, "Duplicate CSeq"
	case nVia == 0:
		return 400, "Missing Via"
	case nMaxFwd > 1:
		return 400, "Duplicate Max-Forwards"
	case nCL > 1:
		return 400, "Duplicate Content-Length"
	case nCT > 1:
		return 400, "Duplicate Content-Type"
	}
	if cs := req.CSeq(); cs == nil || cs.MethodName != req.Method {
		return 400, "CSeq Method Mismatch"
	}
	if cl := req.ContentLength(); cl != nil && int(*cl) != len(req.Body()) {
		return 400, "Content-Length Mismatch"
	}
	if uriHasCtl(&req.Recipient) {
		return 400, "Control Character In Request-URI"
	}
	if req.Recipient.Scheme != "sip" && req.Recipient.Scheme != "sips" {
		return 416, "Unsupported URI Scheme"
	}
	if req.Recipient.Host == "" {
		return 400, "Bad Request-URI"
	}
	if nMaxFwd == 1 && req.Method != sip.OPTIONS {
		if mf := req.MaxForwards(); mf != nil && *mf == 0 {
			return 483, "Too Many Hops"
		}
	}
	return 0, ""
}

// hasCtlNoTab reports a control character other than HTAB, or DEL.
func hasCtlNoTab(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 && b != '\t' || b == 0x7f {
			return true
		}
	}
	return false
}

func uriHasCtl(u *sip.Uri) bool {
	if hasCtlNoTab(u.User) || hasCtlNoTab(u.Host) || hasCtlNoTab(u.Password) || hasCtlNoTab(u.Raw()) {
		return true
	}
	for _, kv := range u.UriParams {
		if hasCtlNoTab(kv.K) || hasCtlNoTab(kv.V) {
			return true
		}
	}
	for _, kv := range u.Headers {
		if hasCtlNoTab(kv.K) || hasCtlNoTab(kv.V) {
			return true
		}
	}
	return false
}

// orderKey is the conversation of a MESSAGE for ordering: the sender's AOR
// and the Request-URI's user@host (host compared without case).
func orderKey(req *sip.Request) string {
	if f := req.From(); f != nil {
		return orderKeyOf(f.Address.User, f.Address.Host, req.Recipient.User, req.Recipient.Host)
	}
	return "\x00" + req.Recipient.User + "@" + strings.ToLower(req.Recipient.Host)
}

// orderKeyOf is the conversation key of a sender user@host and a
// Request-URI user@host (hosts as sipgo keeps them: IPv6 in brackets).
func orderKeyOf(fromUser, fromHost, ruriUser, ruriHost string) string {
	return fromUser + "@" + strings.ToLower(fromHost) + "\x00" + ruriUser + "@" + strings.ToLower(ruriHost)
}

// viaBranch returns the branch of the top Via.
func viaBranch(req *sip.Request) string {
	if v := req.Via(); v != nil {
		b, _ := v.Params.Get("branch")
		return b
	}
	return ""
}

// headerValue returns the first header named by one of names (lower case).
func headerValue(req *sip.Request, names ...string) string {
	for _, n := range names {
		if h := req.GetHeader(n); h != nil {
			return h.Value()
		}
	}
	return ""
}
