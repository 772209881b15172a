package mapping

import (
	"fmt"
	"strings"
)

// The address scheme (DESIGN.md "Addresses", Model B of ADDR-01):
//
//	SIP user of the own SIP domain   bob@sip.example.com               sip:bob@sip.example.com
//	SIP user of another SIP domain   carol\40other.net@sip.example.com sip:carol@other.net
//	XMPP user of a served domain     alice@example.com/phone           sip:alice@example.com;gr=phone
//
// Both directions apply RFC 7247 6.4 / 6.5 with full XEP-0106 escaping (a
// superset of the \26 \27 \2f of ADDR-06 step 5, so that every result is a
// valid JID), and the resourcepart <-> gr parameter rule of ADDR-07 step 8
// and ADDR-10. The mapping is a bijection between canonical JIDs and SIP URIs
// in normal form (see URI.String): a JID this package would not produce (a
// non-canonical escaping such as `\5cn`, or `bob\40sip.example.com` for
// `bob`) is refused with ErrMalformedJID instead of being silently
// rewritten.
//
// A SIP user of the own domain whose user part contains '@' (sip:a%40b@...)
// takes the foreign form with the own domain as host, `a\40b\40sip.example.com`:
// the last \40 always separates user and host.

// AddressingConfig is the address part of the gateway configuration.
type AddressingConfig struct {
	Component      string   // component JID domain, e.g. "sip.example.com" (xmpp.component)
	SIPDomain      string   // SIP domain of the gateway's own SIP users; "" = Component (sip.domain)
	ServedDomains  []string // XMPP domains whose users SIP users may reach (xmpp.domains)
	ForeignDomains bool     // allow SIP users of other domains, XEP-0106 escaped (sip.foreign_domains)
}

// Addressing holds the address scheme of one deployment. It is immutable
// and safe for concurrent use.
type Addressing struct {
	component string
	sipDomain string
	served    map[string]struct{}
	foreign   bool
}

// NewAddressing validates c and returns its Addressing. Domains must be ASCII
// host names (no IDN, no port); they are lower-cased. At least one served
// domain is required; neither the component nor the SIP domain may be a
// served domain (that would loop). Errors wrap ErrConfig and name the key.
func NewAddressing(c AddressingConfig) (*Addressing, error) {
	if !validDomain(c.Component) {
		return nil, fmt.Errorf("%w: xmpp.component %q is not a host name", ErrConfig, c.Component)
	}
	a := &Addressing{
		component: lower(c.Component),
		sipDomain: lower(c.SIPDomain),
		served:    make(map[string]struct{}, len(c.ServedDomains)),
		foreign:   c.ForeignDomains,
	}
	if a.sipDomain == "" {
		a.sipDomain = a.component
	} else if !validDomain(a.sipDomain) {
		return nil, fmt.Errorf("%w: sip.domain %q is not a host name", ErrConfig, c.SIPDomain)
	}
	if len(c.ServedDomains) == 0 {
		return nil, fmt.Errorf("%w: xmpp.domains is empty", ErrConfig)
	}
	for _, d := range c.ServedDomains {
		if !validDomain(d) {
			return nil, fmt.Errorf("%w: xmpp.domains entry %q is not a host name", ErrConfig, d)
		}
		a.served[lower(d)] = struct{}{}
	}
	if a.IsServed(a.component) {
		return nil, fmt.Errorf("%w: xmpp.component %q is also in xmpp.domains", ErrConfig, a.component)
	}
	if a.IsServed(a.sipDomain) {
		return nil, fmt.Errorf("%w: sip.domain %q is also in xmpp.domains", ErrConfig, a.sipDomain)
	}
	return a, nil
}

// Component returns the component JID domain (lower-case).
func (a *Addressing) Component() string { return a.component }

// SIPDomain returns the SIP domain of the gateway's own SIP users.
func (a *Addressing) SIPDomain() string { return a.sipDomain }

// ForeignDomains reports whether SIP users of other domains are mapped.
func (a *Addressing) ForeignDomains() bool { return a.foreign }

// IsServed reports whether domain (any case) is a served XMPP domain.
func (a *Addressing) IsServed(domain string) bool {
	if _, ok := a.served[domain]; ok {
		return true
	}
	l := lower(domain)
	if len(l) == len(domain) && l == domain {
		return false
	}
	_, ok := a.served[l]
	return ok
}

// SIPUserURI maps a JID addressed to the component to the SIP URI of the SIP
// user (X->S Request-URI and To; RFC 7247 6.5 with XEP-0106, ADDR-07):
//
//	bob@sip.example.com               -> sip:bob@sip.example.com
//	carol\40other.net@sip.example.com -> sip:carol@other.net
//	a\40b\40c.org@sip.example.com     -> sip:a%40b@c.org
//	bob@sip.example.com/x             -> sip:bob@sip.example.com;gr=x (ADDR-07 step 8)
//
// Errors: ErrMalformedJID (also for non-canonical escapings),
// ErrUnservedDomain (not the component), ErrNoUser (the bare component JID),
// ErrForeignDomain (foreign form while ForeignDomains is false), ErrLoop (the
// foreign host is a served XMPP domain).
func (a *Addressing) SIPUserURI(jid string) (string, error) {
	j, err := ParseJID(jid)
	if err != nil {
		return "", err
	}
	if j.Domain != a.component {
		return "", fmt.Errorf("%w: %q is not under %s", ErrUnservedDomain, jid, a.component)
	}
	u, err := unescapeCanonical(j.Local)
	if err != nil {
		return "", err
	}
	user, host := u, a.sipDomain
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		user, host = u[:i], u[i+1:]
		if !validDomain(host) {
			return "", fmt.Errorf("%w: bad SIP host %q in %q", ErrMalformedJID, host, jid)
		}
		host = lower(host)
		if host == a.sipDomain {
			if strings.IndexByte(user, '@') < 0 {
				return "", fmt.Errorf("%w: not canonical: %q is written without \\40%s", ErrMalformedJID, jid, host)
			}
		} else if err := a.checkForeign(host); err != nil {
			return "", err
		}
	}
	if user == "" {
		return "", fmt.Errorf("%w: %q", ErrNoUser, jid)
	}
	return buildSIPURI(user, host, j.Resource), nil
}

// SIPUserJID maps the SIP URI of a SIP user (typically the From of an
// incoming request; parameters other than gr, the port and headers are
// ignored) to its JID under the component: the inverse of SIPUserURI, with
// ;gr= giving the resource (ADDR-10). im: and pres: are read like sip:.
//
// Errors: ErrSIPS, ErrTel, ErrUnsupportedScheme, ErrMalformedURI (also for a
// user part that cannot be a localpart, ADDR-14), ErrNoUser,
// ErrForeignDomain, ErrLoop (a served XMPP domain posing as a SIP user).
func (a *Addressing) SIPUserJID(uri string) (string, error) {
	user, host, gr, err := decodeUserURI(uri)
	if err != nil {
		return "", err
	}
	return a.sipUserJID(user, host, gr)
}

// sipUserJID is SIPUserJID on decoded parts; host is lower-case and valid.
func (a *Addressing) sipUserJID(user, host, res string) (string, error) {
	if user == "" {
		return "", fmt.Errorf("%w: no user in SIP URI", ErrNoUser)
	}
	foreignHost := ""
	if host != a.sipDomain {
		if err := a.checkForeign(host); err != nil {
			return "", err
		}
		foreignHost = host
	} else if strings.IndexByte(user, '@') >= 0 {
		foreignHost = host
	}
	return buildJID(user, foreignHost, a.component, res)
}

func (a *Addressing) checkForeign(host string) error {
	if !a.foreign {
		return fmt.Errorf("%w: %s", ErrForeignDomain, host)
	}
	if a.IsServed(host) {
		return fmt.Errorf("%w: %s is a served XMPP domain", ErrLoop, host)
	}
	return nil
}

// XMPPUserURI maps the JID of a served XMPP user to its SIP URI, for the
// From of an X->S request: the bare JID, plus ;gr=<resource> for a full JID
// (ADDR-09, RFC 7572 4 note 1): alice@example.com/phone ->
// sip:alice@example.com;gr=phone.
//
// Errors: ErrMalformedJID, ErrUnservedDomain, ErrNoUser.
func (a *Addressing) XMPPUserURI(jid string) (string, error) {
	j, err := ParseJID(jid)
	if err != nil {
		return "", err
	}
	if !a.IsServed(j.Domain) {
		return "", fmt.Errorf("%w: %s", ErrUnservedDomain, j.Domain)
	}
	return uriForJID(j, jid)
}

// XMPPUserJID maps the Request-URI of an incoming SIP request to the JID of
// the served XMPP user it addresses (RFC 7247 6.4, ADDR-06): ;gr= selects
// the resource, otherwise the bare JID (DESIGN.md behaviour contract).
//
// Errors: ErrSIPS (ADDR-05), ErrTel (ADDR-04), ErrUnsupportedScheme,
// ErrMalformedURI, ErrUnservedDomain, ErrNoUser.
func (a *Addressing) XMPPUserJID(uri string) (string, error) {
	user, host, gr, err := decodeUserURI(uri)
	if err != nil {
		return "", err
	}
	if !a.IsServed(host) {
		return "", fmt.Errorf("%w: %s", ErrUnservedDomain, host)
	}
	if user == "" {
		return "", fmt.Errorf("%w: no user in %q", ErrNoUser, uri)
	}
	return buildJID(user, "", host, gr)
}

// JIDForURI maps any SIP URI this deployment can address to a JID: a URI
// in a served domain to the XMPP user (XMPPUserJID), anything else to a SIP
// user under the component (SIPUserJID). Use it where the URI may be either,
// e.g. a 301 Contact or a Refer-To.
func (a *Addressing) JIDForURI(uri string) (string, error) {
	r, err := parseRawURI(uri)
	if err == nil && a.IsServed(r.host) {
		return a.XMPPUserJID(uri)
	}
	return a.SIPUserJID(uri)
}

// URIForJID maps any JID this deployment can address to a SIP URI: a JID
// under the component with SIPUserURI, one in a served domain with
// XMPPUserURI. Other domains give ErrUnservedDomain.
func (a *Addressing) URIForJID(jid string) (string, error) {
	j, err := ParseJID(jid)
	if err != nil {
		return "", err
	}
	if j.Domain == a.component {
		return a.SIPUserURI(jid)
	}
	return a.XMPPUserURI(jid)
}

// PromptJID answers a jabber:iq:gateway prompt (XEP-0100 6.3, ADDR-13b,
// TV-13): the user types a SIP address, with or without a scheme, and gets
// the JID to use: "romeo@example.net" -> romeo\40example.net@sip.gw.example.
// Without a scheme the text is taken literally (not percent-decoded), and a
// text without '@' is a user of the own SIP domain.
func (a *Addressing) PromptJID(prompt string) (string, error) {
	p := strings.TrimSpace(prompt)
	if c := strings.IndexByte(p, ':'); c > 0 && schemeOf(p[:c]) != "" {
		return a.SIPUserJID(p)
	}
	user, host := p, a.sipDomain
	if i := strings.LastIndexByte(p, '@'); i >= 0 {
		user, host = p[:i], p[i+1:]
		if !validDomain(host) {
			return "", fmt.Errorf("%w: bad host %q", ErrMalformedURI, host)
		}
		host = lower(host)
	}
	return a.sipUserJID(user, host, "")
}

// JIDFromSIPURI is the plain RFC 7247 6.4 algorithm (Model A, domain
// mapping, ADDR-06): the domain stays the domain, the user part is
// percent-decoded and XEP-0106 escaped, ;gr= becomes the resource.
// sip:f%C3%BC@sip.example -> fü@sip.example (TV-10). It knows nothing of the
// deployment; Addressing.SIPUserJID / XMPPUserJID are the Model B mapping.
func JIDFromSIPURI(uri string) (string, error) {
	user, host, gr, err := decodeUserURI(uri)
	if err != nil {
		return "", err
	}
	if user == "" {
		return "", fmt.Errorf("%w: no user in %q", ErrNoUser, uri)
	}
	return buildJID(user, "", host, gr)
}

// SIPURIFromJID is the plain RFC 7247 6.5 algorithm (Model A, ADDR-07, with
// the sip: scheme of step 7): tschüss@xmpp.example ->
// sip:tsch%C3%BCss@xmpp.example, baz@xmpp.example/qux ->
// sip:baz@xmpp.example;gr=qux (TV-11).
func SIPURIFromJID(jid string) (string, error) {
	j, err := ParseJID(jid)
	if err != nil {
		return "", err
	}
	return uriForJID(j, jid)
}

// uriForJID is RFC 7247 s6.5 on a parsed JID (raw is for the error).
func uriForJID(j JID, raw string) (string, error) {
	user, err := unescapeCanonical(j.Local)
	if err != nil {
		return "", err
	}
	if user == "" {
		return "", fmt.Errorf("%w: %q", ErrNoUser, raw)
	}
	return buildSIPURI(user, j.Domain, j.Resource), nil
}

// unescapeCanonical unescapes a wire localpart and refuses escapings that
// EscapeLocal would not produce, keeping the mapping bijective.
func unescapeCanonical(local string) (string, error) {
	u, err := UnescapeLocal(local)
	if err != nil {
		return "", err
	}
	if !isCanonicalUnescaped(local, u) {
		return "", fmt.Errorf("%w: not the canonical XEP-0106 escaping: %q", ErrMalformedJID, local)
	}
	return u, nil
}

// decodeUserURI parses a sip/im/pres URI naming a user and returns the
// decoded user part (UTF-8, ADDR-06 step 4), the lower-case host and the
// decoded gr value ("" if none). sips and tel are refused first.
func decodeUserURI(uri string) (user, host, gr string, err error) {
	r, err := parseRawURI(uri)
	if err != nil {
		return "", "", "", err
	}
	switch r.scheme {
	case SchemeSIPS:
		return "", "", "", ErrSIPS
	case SchemeTel:
		return "", "", "", ErrTel
	}
	if r.host[0] == '[' {
		return "", "", "", fmt.Errorf("%w: IPv6 hosts are not mapped: %q", ErrMalformedURI, uri)
	}
	if user, err = DecodeSIPUser(r.user); err != nil {
		return "", "", "", err
	}
	if gr, err = DecodeSIPParam(r.gr); err != nil {
		return "", "", "", err
	}
	if gr != "" {
		if p := resourceProblem(gr); p != "" {
			return "", "", "", fmt.Errorf("%w: gr parameter: %s", ErrMalformedURI, p)
		}
	}
	return user, lower(r.host), gr, nil
}

// buildJID escapes user (and foreignHost, if set, after a \40) into a
// localpart and returns local@domain[/res]. Problems wrap ErrMalformedURI:
// the input came from the SIP side (ADDR-14).
func buildJID(user, foreignHost, domain, res string) (string, error) {
	if p := escapeProblem(user, foreignHost == ""); p != "" {
		return "", fmt.Errorf("%w: user part cannot be a JID localpart: %s", ErrMalformedURI, p)
	}
	local := escapedLen(user)
	if foreignHost != "" {
		local += 3 + len(foreignHost)
	}
	if local > maxPart {
		return "", fmt.Errorf("%w: localpart would exceed %d bytes", ErrMalformedURI, maxPart)
	}
	n := local + 1 + len(domain)
	if res != "" {
		n += 1 + len(res)
	}
	var b strings.Builder
	b.Grow(n)
	writeEscaped(&b, user)
	if foreignHost != "" {
		b.WriteString(`\40`)
		b.WriteString(foreignHost)
	}
	b.WriteByte('@')
	b.WriteString(domain)
	if res != "" {
		b.WriteByte('/')
		b.WriteString(res)
	}
	return b.String(), nil
}

// buildSIPURI returns sip:user@host[;gr=res] in normal form.
func buildSIPURI(user, host, res string) string {
	n := 5 + encodedLen(user, sipUserRaw) + len(host)
	if res != "" {
		n += 4 + encodedLen(res, paramRaw)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString("sip:")
	writePercent(&b, user, sipUserRaw)
	b.WriteByte('@')
	b.WriteString(host)
	if res != "" {
		b.WriteString(";gr=")
		writePercent(&b, res, paramRaw)
	}
	return b.String()
}
