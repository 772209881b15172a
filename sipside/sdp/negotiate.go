package sdp

import (
	"fmt"
	"strings"
)

// Negotiate returns the accept-types an answerer puts in its answer to
// offer (RFC 4975 8.6; CHAT-10b, CHAT-10c): every entry of ours that the
// offer also accepts, in our order (so message/cpim stays first, CHAT-03),
// each as the more specific of the two matching entries. Wildcards match
// both ways: `*` matches everything, `text/*` every text type; ours
// `text/*` against the offer's `text/plain` gives `text/plain`, ours `*`
// gives the offer's entries. Types compare case-insensitively; duplicates
// are dropped. No type in common is ErrNoCommonType (answer 488, or port 0).
func Negotiate(offer MSRPMedia, ourAcceptTypes []string) ([]string, error) {
	var out []string
	for _, o := range ourAcceptTypes {
		for _, f := range offer.AcceptTypes {
			t := ""
			switch {
			case covers(f, o):
				t = o
			case covers(o, f):
				t = f
			default:
				continue
			}
			if !containsFold(out, t) {
				out = append(out, t)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: offer accepts %q, we accept %q", ErrNoCommonType, offer.AcceptTypes, ourAcceptTypes)
	}
	return out, nil
}

// Accepts reports whether a message of this Content-Type (parameters
// ignored) may be sent to the peer as the top-level type: it must match an
// entry of its accept-types (RFC 4975 8.6; CHAT-29).
func (m MSRPMedia) Accepts(contentType string) bool {
	return acceptsIn(m.AcceptTypes, contentType)
}

// AcceptsWrapped reports whether contentType may be sent inside a wrapper
// such as message/cpim: it must match accept-wrapped-types or accept-types
// (RFC 4975 8.6: the types listed in accept-types may appear wrapped too;
// CHAT-29).
func (m MSRPMedia) AcceptsWrapped(contentType string) bool {
	return acceptsIn(m.AcceptWrappedTypes, contentType) || acceptsIn(m.AcceptTypes, contentType)
}

func acceptsIn(list []string, contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	if typ, sub, ok := strings.Cut(mt, "/"); !ok || !mimeToken(typ) || !mimeToken(sub) || sub == "*" || typ == "*" {
		return false // a concrete type is sent, never a range
	}
	for _, e := range list {
		if covers(e, mt) {
			return true
		}
	}
	return false
}

// covers reports whether the media range g includes s (both `*`,
// `type/*` or `type/subtype`).
func covers(g, s string) bool {
	if g == "*" || g == "*/*" {
		return true
	}
	if s == "*" || s == "*/*" {
		return false
	}
	gt, gs, _ := strings.Cut(g, "/")
	st, ss, _ := strings.Cut(s, "/")
	if !strings.EqualFold(gt, st) {
		return false
	}
	if gs == "*" {
		return true
	}
	return ss != "*" && strings.EqualFold(gs, ss)
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}
