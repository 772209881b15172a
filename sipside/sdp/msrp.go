package sdp

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	pion "github.com/pion/sdp/v3"
)

// Transport protocols of the message media line (RFC 4975 8.1).
const (
	ProtoMSRP  = "TCP/MSRP"
	ProtoMSRPS = "TCP/TLS/MSRP"
)

// Values of a=setup (RFC 6135 4, RFC 4145 4).
const (
	SetupActive  = "active"
	SetupPassive = "passive"
	SetupActpass = "actpass"
)

// Direction attributes (RFC 4566 6, RFC 3264 5.1).
const (
	SendRecv = "sendrecv"
	SendOnly = "sendonly"
	RecvOnly = "recvonly"
	Inactive = "inactive"
)

// MSRPMedia is the MSRP stream of an offer or answer (RFC 4975 8):
//
//   - Addr: the c= address (IPv4 or IPv6 literal without brackets, or a
//     host name); Port: the m= port, 0 for a rejected stream (answers only);
//   - TLS: the protocol is TCP/TLS/MSRP (msrps: URIs) rather than TCP/MSRP;
//   - Path: the a=path URIs as listed, relays first and the endpoint's own
//     URI last (RFC 4975 8.2, RFC 4976);
//   - AcceptTypes, AcceptWrappedTypes: a=accept-types and
//     a=accept-wrapped-types, in order (RFC 4975 8.6; CHAT-03 wants
//     message/cpim first in ours);
//   - MaxSize: a=max-size in octets, 0 when absent (RFC 4975 8.7, CHAT-02e);
//   - Setup: a=setup (RFC 6135), "" when absent; Direction: sendrecv,
//     sendonly, recvonly or inactive, "" when absent (which means sendrecv).
type MSRPMedia struct {
	Addr               string
	Port               int
	TLS                bool
	Path               []string
	AcceptTypes        []string
	AcceptWrappedTypes []string
	MaxSize            int64
	Setup              string
	Direction          string
}

// Origin is what the o= line carries besides the address (RFC 4566 5.2):
// Username ("" gives "-"), the session id and version. The caller chooses
// them (RFC 3264 5: the version increases with each new offer or answer in
// the session); this package draws nothing at random.
type Origin struct {
	Username       string
	SessionID      uint64
	SessionVersion uint64
}

// BuildOffer writes an SDP offer for one MSRP stream (RFC 4975 8, RFC 7573
// 4; CHAT-02): v=0, o=, s=-, c=, t=0 0, the m=message line with format *,
// then a=accept-types, a=accept-wrapped-types, a=path, a=max-size, a=setup
// and the direction, each optional one only when set. Errors wrap
// ErrBadMedia; see checkMedia for the rules (no CR/LF anywhere, the port of
// a single path URI equals the m= port, msrps: exactly when TLS).
func BuildOffer(o Origin, m MSRPMedia) ([]byte, error) {
	if m.Port == 0 {
		return nil, fmt.Errorf("%w: an offer needs a port", ErrBadMedia)
	}
	return build(o, m, true)
}

// BuildAnswer writes an SDP answer (RFC 3264 6, RFC 4975 8, RFC 7573 5;
// CHAT-10) in the same form as BuildOffer. Port 0 rejects the stream (RFC
// 4975 8.6): Path and AcceptTypes may then be empty. An answer's setup is
// active or passive, never actpass (RFC 4145 4.1).
func BuildAnswer(o Origin, m MSRPMedia) ([]byte, error) {
	if m.Setup == SetupActpass {
		return nil, fmt.Errorf("%w: an answer cannot use setup:actpass", ErrBadMedia)
	}
	return build(o, m, false)
}

func build(o Origin, m MSRPMedia, offer bool) ([]byte, error) {
	if o.Username == "" {
		o.Username = "-"
	}
	if !visibleToken(o.Username) {
		return nil, fmt.Errorf("%w: o= username %q", ErrBadMedia, o.Username)
	}
	addrType, err := checkMedia(m)
	if err != nil {
		return nil, err
	}
	proto := []string{"TCP", "MSRP"}
	if m.TLS {
		proto = []string{"TCP", "TLS", "MSRP"}
	}
	attrs := make([]pion.Attribute, 0, 6)
	if len(m.AcceptTypes) > 0 {
		attrs = append(attrs, pion.NewAttribute("accept-types", strings.Join(m.AcceptTypes, " ")))
	}
	if len(m.AcceptWrappedTypes) > 0 {
		attrs = append(attrs, pion.NewAttribute("accept-wrapped-types", strings.Join(m.AcceptWrappedTypes, " ")))
	}
	if len(m.Path) > 0 {
		attrs = append(attrs, pion.NewAttribute("path", strings.Join(m.Path, " ")))
	}
	if m.MaxSize > 0 {
		attrs = append(attrs, pion.NewAttribute("max-size", strconv.FormatInt(m.MaxSize, 10)))
	}
	if m.Setup != "" {
		attrs = append(attrs, pion.NewAttribute("setup", m.Setup))
	}
	if m.Direction != "" {
		attrs = append(attrs, pion.NewPropertyAttribute(m.Direction))
	}
	sd := pion.SessionDescription{
		Origin: pion.Origin{
			Username: o.Username, SessionID: o.SessionID, SessionVersion: o.SessionVersion,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: m.Addr,
		},
		SessionName:           "-",
		ConnectionInformation: &pion.ConnectionInformation{NetworkType: "IN", AddressType: addrType, Address: &pion.Address{Address: m.Addr}},
		TimeDescriptions:      []pion.TimeDescription{{}},
		MediaDescriptions: []*pion.MediaDescription{{
			MediaName:  pion.MediaName{Media: "message", Port: pion.RangedPort{Value: m.Port}, Protos: proto, Formats: []string{"*"}},
			Attributes: attrs,
		}},
	}
	b, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMedia, err)
	}
	return b, nil
}

// checkMedia validates m for Build and returns the c= address type. The
// rules: Addr an IP literal (no zone, no brackets) or a host name; Port
// 0..65535; unless Port is 0, at least one path URI and one accept type;
// every path URI an MSRP URI (RFC 4975 9) and the last one msrps: exactly
// when TLS (CHAT-02b); with a single path URI (no relay) its port is
// explicit and equals Port (CHAT-02b, CHAT-02d); media types are `*`,
// `type/*` or `type/subtype` (RFC 4975 8.6, no parameters); MaxSize >= 0;
// Setup and Direction known or "". Values with CR, LF or any other control
// character or blank never pass, so no SDP line can be injected.
func checkMedia(m MSRPMedia) (addrType string, err error) {
	bad := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%w: "+format, append([]any{ErrBadMedia}, a...)...)
	}
	addrType, ok := addressType(m.Addr)
	if !ok {
		return bad("address %q", m.Addr)
	}
	if m.Port < 0 || m.Port > 65535 {
		return bad("port %d", m.Port)
	}
	if m.Port != 0 && (len(m.Path) == 0 || len(m.AcceptTypes) == 0) {
		return bad("a=path and a=accept-types are required (RFC 4975 8.2)")
	}
	for _, u := range m.Path {
		if _, _, ok := parseMSRPURI(u); !ok {
			return bad("path URI %q", u)
		}
	}
	if n := len(m.Path); n > 0 {
		secure, port, _ := parseMSRPURI(m.Path[n-1])
		if secure != m.TLS {
			return bad("path URI %q does not agree with the protocol (TLS %v)", m.Path[n-1], m.TLS)
		}
		if n == 1 && m.Port != 0 && port != m.Port {
			return bad("path URI %q: port must be explicit and equal the m= port %d", m.Path[0], m.Port)
		}
	}
	for _, list := range [][]string{m.AcceptTypes, m.AcceptWrappedTypes} {
		for _, t := range list {
			if !validMediaRange(t) {
				return bad("media type %q", t)
			}
		}
	}
	if m.MaxSize < 0 {
		return bad("max-size %d", m.MaxSize)
	}
	switch m.Setup {
	case "", SetupActive, SetupPassive, SetupActpass:
	default:
		return bad("setup %q", m.Setup)
	}
	switch m.Direction {
	case "", SendRecv, SendOnly, RecvOnly, Inactive:
	default:
		return bad("direction %q", m.Direction)
	}
	return addrType, nil
}

// ParseMSRP reads an offer or answer and returns its first usable MSRP
// stream: the first m=message line with protocol TCP/MSRP or TCP/TLS/MSRP
// and a port other than 0 (RFC 4975 8). The media-level c= wins over the
// session-level one; a=setup and the direction fall back to session level
// (RFC 4566 6). Tolerated: an a=max-size that is not a number, an unknown
// a=setup value (both read as absent); path URIs are checked for shape
// only, not against c= and m=.
//
// Errors: ErrBadSDP (an empty body; SDP that pion/sdp does not read, which
// wants v=, o=, s=, t= in order and knows only the IANA protocol names,
// case-sensitively, so that one m=message line with TCP/WS/MSRP (RFC 7977)
// refuses the whole body; no c=; no a=path or a=accept-types; a malformed
// path URI or media type; a port over 65535); ErrNoMSRPMedia when there is no usable line, wrapping ErrMSRPRejected as
// well when a message line has port 0.
func ParseMSRP(body []byte) (MSRPMedia, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return MSRPMedia{}, fmt.Errorf("%w: empty body", ErrBadSDP)
	}
	var sd pion.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return MSRPMedia{}, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	rejected := false
	for _, md := range sd.MediaDescriptions {
		if md == nil || !strings.EqualFold(md.MediaName.Media, "message") {
			continue
		}
		tls, ok := msrpProto(md.MediaName.Protos)
		if !ok {
			continue
		}
		if md.MediaName.Port.Value == 0 {
			rejected = true
			continue
		}
		return readMedia(&sd, md, tls)
	}
	if rejected {
		return MSRPMedia{}, fmt.Errorf("%w: %w", ErrNoMSRPMedia, ErrMSRPRejected)
	}
	return MSRPMedia{}, ErrNoMSRPMedia
}

// msrpProto recognises TCP/MSRP and TCP/TLS/MSRP (case-insensitive).
func msrpProto(p []string) (tls, ok bool) {
	switch strings.ToUpper(strings.Join(p, "/")) {
	case ProtoMSRP:
		return false, true
	case ProtoMSRPS:
		return true, true
	}
	return false, false
}

func readMedia(sd *pion.SessionDescription, md *pion.MediaDescription, tls bool) (MSRPMedia, error) {
	m := MSRPMedia{Port: md.MediaName.Port.Value, TLS: tls}
	if m.Port < 0 || m.Port > 65535 {
		return MSRPMedia{}, fmt.Errorf("%w: port %d", ErrBadSDP, m.Port)
	}
	conn := md.ConnectionInformation
	if conn == nil {
		conn = sd.ConnectionInformation
	}
	if conn == nil || conn.Address == nil || conn.Address.Address == "" {
		return MSRPMedia{}, fmt.Errorf("%w: no c= line for the message stream", ErrBadSDP)
	}
	m.Addr = conn.Address.Address
	if _, ok := addressType(m.Addr); !ok {
		return MSRPMedia{}, fmt.Errorf("%w: c= address %q", ErrBadSDP, m.Addr)
	}
	var seenAccept, seenWrapped, seenPath, seenMax bool
	for _, a := range md.Attributes {
		var err error
		switch a.Key {
		case "accept-types":
			if !seenAccept {
				seenAccept = true
				m.AcceptTypes, err = mediaList(a.Value)
			}
		case "accept-wrapped-types":
			if !seenWrapped {
				seenWrapped = true
				m.AcceptWrappedTypes, err = mediaList(a.Value)
			}
		case "path":
			if !seenPath {
				seenPath = true
				m.Path = strings.Fields(a.Value)
				for _, u := range m.Path {
					if _, _, ok := parseMSRPURI(u); !ok {
						err = fmt.Errorf("%w: path URI %q", ErrBadSDP, u)
					}
				}
			}
		case "max-size":
			if !seenMax {
				seenMax = true
				if n, e := strconv.ParseInt(strings.TrimSpace(a.Value), 10, 64); e == nil && n > 0 {
					m.MaxSize = n
				}
			}
		}
		if err != nil {
			return MSRPMedia{}, err
		}
	}
	if len(m.Path) == 0 || len(m.AcceptTypes) == 0 {
		return MSRPMedia{}, fmt.Errorf("%w: a=path and a=accept-types are required (RFC 4975 8.2)", ErrBadSDP)
	}
	m.Setup, m.Direction = setupAndDirection(md.Attributes)
	if m.Setup == "" || m.Direction == "" {
		s, d := setupAndDirection(sd.Attributes)
		if m.Setup == "" {
			m.Setup = s
		}
		if m.Direction == "" {
			m.Direction = d
		}
	}
	return m, nil
}

// setupAndDirection returns the first known a=setup value and the first
// direction attribute.
func setupAndDirection(attrs []pion.Attribute) (setup, dir string) {
	for _, a := range attrs {
		switch a.Key {
		case "setup":
			if v := strings.TrimSpace(a.Value); setup == "" && (v == SetupActive || v == SetupPassive || v == SetupActpass) {
				setup = v
			}
		case SendRecv, SendOnly, RecvOnly, Inactive:
			if dir == "" {
				dir = a.Key
			}
		}
	}
	return setup, dir
}

// mediaList splits an accept-types value and checks each entry.
func mediaList(v string) ([]string, error) {
	l := strings.Fields(v)
	if len(l) == 0 {
		return nil, fmt.Errorf("%w: empty media type list", ErrBadSDP)
	}
	for _, t := range l {
		if !validMediaRange(t) {
			return nil, fmt.Errorf("%w: media type %q", ErrBadSDP, t)
		}
	}
	return l, nil
}

// addressType returns IP4 or IP6 for an address literal, IP4 for a host
// name (RFC 4566 5.7 allows an FQDN with IP4), and false for anything else.
func addressType(a string) (string, bool) {
	if ip, err := netip.ParseAddr(a); err == nil {
		if ip.Zone() != "" {
			return "", false
		}
		if ip.Is4() {
			return "IP4", true
		}
		return "IP6", true
	}
	if !validHost(a) {
		return "", false
	}
	return "IP4", true
}

// validHost reports whether s is a DNS name: labels of letters, digits and
// '-' (1..63 octets, no '-' at either end), at most 253 octets.
func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// parseMSRPURI checks the shape of an MSRP URI (RFC 4975 9):
// `msrp[s]://[userinfo@]host[:port][/session-id];transport *(;param)` and
// returns whether it is msrps and its port (0 when absent).
func parseMSRPURI(u string) (secure bool, port int, ok bool) {
	rest, found := cutPrefixFold(u, "msrps://")
	if found {
		secure = true
	} else if rest, found = cutPrefixFold(u, "msrp://"); !found {
		return false, 0, false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c >= 0x7f {
			return false, 0, false
		}
	}
	semi := strings.IndexByte(rest, ';')
	if semi < 0 {
		return false, 0, false // the transport is mandatory
	}
	hier, params := rest[:semi], rest[semi+1:]
	for p := range strings.SplitSeq(params, ";") {
		if p == "" {
			return false, 0, false
		}
	}
	authority, sessionID, hasID := strings.Cut(hier, "/")
	if hasID && !validSessionID(sessionID) {
		return false, 0, false
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = authority[at+1:]
	}
	var portStr string
	hasPort := false
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return false, 0, false
		}
		if ip, err := netip.ParseAddr(authority[1:end]); err != nil || !ip.Is6() || ip.Zone() != "" {
			return false, 0, false
		}
		switch tail := authority[end+1:]; {
		case tail == "":
		case tail[0] == ':':
			portStr, hasPort = tail[1:], true
		default:
			return false, 0, false
		}
	} else {
		host := authority
		if c := strings.LastIndexByte(authority, ':'); c >= 0 {
			host, portStr, hasPort = authority[:c], authority[c+1:], true
		}
		if ip, err := netip.ParseAddr(host); err == nil && !ip.Is4() || err != nil && !validHost(host) {
			return false, 0, false
		}
	}
	if hasPort {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 || portStr[0] == '+' {
			return false, 0, false
		}
		port = p
	}
	return secure, port, true
}

// validSessionID: 1*( unreserved / "+" / "=" / "/" ) (RFC 4975 9).
func validSessionID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && strings.IndexByte("-._~+=/", c) < 0 {
			return false
		}
	}
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// validMediaRange reports whether t is `*`, `type/*` or `type/subtype`
// with RFC 2045 tokens (RFC 4975 8.6, 9: no parameters).
func validMediaRange(t string) bool {
	if t == "*" {
		return true
	}
	typ, sub, ok := strings.Cut(t, "/")
	return ok && mimeToken(typ) && (sub == "*" || mimeToken(sub))
}

// mimeToken: RFC 2045 token (no blanks, controls or tspecials).
func mimeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// visibleToken: one or more visible ASCII characters (RFC 4566 5.2
// username, no spaces).
func visibleToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
