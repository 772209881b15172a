package mapping

import (
	"fmt"
	"strings"
)

// Presence between XMPP and PIDF (RFC 8048 6; CHECKLIST 4.4, 4.5).

// Presence type and show values (RFC 6121 4.7).
const (
	PresenceUnavailable = "unavailable"

	ShowAway = "away"
	ShowChat = "chat"
	ShowDND  = "dnd"
	ShowXA   = "xa"
)

// Presence is one XMPP <presence/> of one resource, reduced to what RFC 8048
// maps. The stanza id has no mapping (RFC 8048 6.2 Table 1; RFC 7248 mapped
// it to CSeq, CHECKLIST 9).
type Presence struct {
	From        string // full JID of the resource; a bare JID speaks for the user as a whole
	To          string // JID; X->S it is not used (the NOTIFY goes in-dialog)
	Type        string // "" (available) or "unavailable" (PRES-04)
	Show        string // "", away, chat, dnd or xa
	Status      string // <status/> text
	Lang        string // xml:lang of the stanza, and so of Status
	Priority    int    // <priority/>, -128..127, when HasPriority
	HasPriority bool
}

// PIDFOptions are the caller's parts of a PIDF document.
type PIDFOptions struct {
	// Timestamp, an xs:dateTime such as "2026-01-02T15:04:05.123Z", is put
	// in every tuple (PRES-40e: SHOULD appear and MUST NOT repeat across
	// documents, so give it sub-second precision). mapping reads no clock:
	// format it from yours with time.RFC3339Nano. "" leaves it out.
	Timestamp string
	// RPID adds a dm:person with RPID activities (RFC 4480) from the show of
	// the highest-priority available resource: away and xa -> away, dnd ->
	// busy, chat and none -> no activity (PRES-43a, a MAY).
	RPID bool
}

// PriorityToQ maps an XMPP priority to a PIDF contact priority in
// thousandths (RFC 8048 6.2 Table 1, TV-18): negative priorities MUST NOT
// be mapped (ok false); 0 -> 0, 127 -> 1000, and floor(p*1000/127) between,
// so 1 -> 7 ("0.007"), 2 -> 15, 126 -> 992. Values above 127 count as 127.
func PriorityToQ(p int) (q int, ok bool) {
	switch {
	case p < 0:
		return 0, false
	case p >= 127:
		return 1000, true
	}
	return p * 1000 / 127, true
}

// QToPriority maps a PIDF contact priority in thousandths to an XMPP
// priority (RFC 8048 6.3 Table 2, derived): round(q*127/1000), 0..127, so
// 992 -> 126 and 7 -> 1 (TV-18). It inverts PriorityToQ on 0..127.
func QToPriority(q int) int {
	q = max(0, min(q, 1000))
	return (q*127 + 500) / 1000
}

// showActivity is the outbound RPID activity for a show (PRES-43a).
func showActivity(show string) string {
	switch show {
	case ShowAway, ShowXA:
		return "away"
	case ShowDND:
		return "busy"
	}
	return ""
}

// activityShow is the show for the first RPID activity that has one
// (PRES-43b): away -> away; holiday, vacation -> xa; busy, on-the-phone,
// meeting -> dnd.
func activityShow(acts []string) string {
	for _, a := range acts {
		switch a {
		case "away":
			return ShowAway
		case "holiday", "vacation":
			return ShowXA
		case "busy", "on-the-phone", "meeting":
			return ShowDND
		}
	}
	return ""
}

func validShow(s string) bool {
	switch s {
	case "", ShowAway, ShowChat, ShowDND, ShowXA:
		return true
	}
	return false
}

// checkPresence validates p as presence state and returns its From.
func checkPresence(p Presence) (JID, error) {
	if p.Type != "" && p.Type != PresenceUnavailable {
		return JID{}, fmt.Errorf("%w: type %q (PRES-04)", ErrPresenceType, p.Type)
	}
	j, err := ParseJID(p.From)
	if err != nil {
		return JID{}, err
	}
	switch {
	case j.Local == "":
		return JID{}, fmt.Errorf("%w: from %q has no localpart", ErrBadPresence, p.From)
	case !validShow(p.Show):
		return JID{}, fmt.Errorf("%w: show %q", ErrBadPresence, p.Show)
	case p.HasPriority && (p.Priority < -128 || p.Priority > 127):
		return JID{}, fmt.Errorf("%w: priority %d outside -128..127", ErrBadPresence, p.Priority)
	case !validXMLText(p.Status):
		return JID{}, fmt.Errorf("%w: status text XML cannot carry", ErrBadPresence)
	}
	return j, nil
}

// effectivePriority is the priority an available presence competes with:
// none counts as 0 (RFC 6121 4.7.2.3).
func effectivePriority(p Presence) int {
	if p.HasPriority {
		return p.Priority
	}
	return 0
}

// PresenceToPIDF maps the presence of the served XMPP user user (a bare JID)
// to one PIDF document (X->S, RFC 8048 6.2 Table 1, CHECKLIST 4.4) and the
// Content-Language to send with it. ps holds one presence per resource:
// every available resource (PRES-29: each NOTIFY carries the complete
// state, PresenceState.Available gives it), plus an unavailable one for a
// resource that has just gone, which keeps its tuple closed (PRES-41).
//
//   - each presence is a tuple, in the order given, with id
//     TupleID(resource) (PRES-40c);
//   - no type -> <basic>open</basic>, unavailable -> closed;
//   - show -> <show xmlns='jabber:client'/> in <status> (TV-17), and with
//     opt.RPID an RPID activity (PRES-43a);
//   - <contact> is the resource's SIP URI (XMPPUserURI: sip:user@domain;gr=
//     resource), with the priority as PriorityToQ gives it: none for a
//     negative priority or none (TV-18);
//   - status -> <note xml:lang='...'> with the presence's xml:lang;
//   - entity is pres:user@domain (PRES-40b); From and To are the NOTIFY's
//     in-dialog headers, the caller's; the stanza id has no mapping.
//
// An empty ps gives a document with one closed tuple for the user as a
// whole (id "ID-", contact without gr): no resource is available (PRES-26).
// The Content-Language is the xml:lang of the highest-priority available
// resource (the first at equal priority), or "" when that has none or it is
// not a well-formed language tag; such a tag is left off the note too.
//
// Errors: ErrMalformedJID, ErrUnservedDomain, ErrNoUser (user is not a
// served XMPP user); ErrPresenceType (PRES-04); ErrBadPresence (a presence
// of another user, a resource twice, a bad show, priority, status, or
// opt.Timestamp); ErrPIDFTooBig (more than PIDFMaxTuples resources).
func (a *Addressing) PresenceToPIDF(user string, ps []Presence, opt PIDFOptions) (body []byte, contentLanguage string, err error) {
	d, lang, err := a.pidfFromPresence(user, ps, opt)
	if err != nil {
		return nil, "", err
	}
	body, err = d.Marshal()
	if err != nil {
		return nil, "", err
	}
	return body, lang, nil
}

func (a *Addressing) pidfFromPresence(user string, ps []Presence, opt PIDFOptions) (PIDF, string, error) {
	uj, err := ParseJID(user)
	if err != nil {
		return PIDF{}, "", err
	}
	if uj.Resource != "" {
		return PIDF{}, "", fmt.Errorf("%w: user %q is not a bare JID", ErrBadPresence, user)
	}
	bareURI, err := a.XMPPUserURI(user)
	if err != nil {
		return PIDF{}, "", err
	}
	if opt.Timestamp != "" && !validDateTime(opt.Timestamp) {
		return PIDF{}, "", fmt.Errorf("%w: timestamp %q is not an xs:dateTime", ErrBadPresence, opt.Timestamp)
	}
	d := PIDF{Entity: "pres:" + strings.TrimPrefix(bareURI, "sip:")}
	if len(ps) == 0 {
		d.Tuples = []Tuple{{ID: TupleID(""), Basic: "closed", Contact: bareURI, Timestamp: opt.Timestamp}}
		return d, "", nil
	}
	d.Tuples = make([]Tuple, 0, len(ps))
	seen := make(map[string]bool, len(ps))
	best := -1
	for i, p := range ps {
		j, err := checkPresence(p)
		if err != nil {
			return PIDF{}, "", err
		}
		if j.Bare() != uj {
			return PIDF{}, "", fmt.Errorf("%w: presence of %s in the document of %s (PRES-31)", ErrBadPresence, j.Bare(), user)
		}
		if seen[j.Resource] {
			return PIDF{}, "", fmt.Errorf("%w: resource %q given twice", ErrBadPresence, j.Resource)
		}
		seen[j.Resource] = true
		contact := bareURI
		if j.Resource != "" {
			if contact, err = a.XMPPUserURI(j.String()); err != nil {
				return PIDF{}, "", err
			}
		}
		t := Tuple{ID: TupleID(j.Resource), Basic: "closed", Contact: contact, Timestamp: opt.Timestamp}
		if p.Type == "" {
			t.Basic = "open"
			t.Show = p.Show
			if q, ok := PriorityToQ(p.Priority); ok && p.HasPriority {
				t.Q, t.HasQ = q, true
			}
			if best < 0 || effectivePriority(p) > effectivePriority(ps[best]) {
				best = i
			}
		}
		if p.Status != "" {
			t.Notes = []Note{{Lang: langOrNone(p.Lang), Text: p.Status}}
		}
		d.Tuples = append(d.Tuples, t)
	}
	if best < 0 {
		return d, "", nil
	}
	if act := showActivity(ps[best].Show); opt.RPID && act != "" {
		d.Activities = []string{act}
	}
	return d, langOrNone(ps[best].Lang), nil
}

func langOrNone(l string) string {
	if validLangTag(l) {
		return l
	}
	return ""
}

// validDateTime is a shape check of an xs:dateTime with a time zone:
// YYYY-MM-DDThh:mm:ss[.s+](Z|(+|-)hh:mm).
func validDateTime(s string) bool {
	const shape = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(shape)+1 {
		return false
	}
	for i := 0; i < len(shape); i++ {
		if c := s[i]; shape[i] == 'd' && (c < '0' || c > '9') || shape[i] != 'd' && c != shape[i] {
			return false
		}
	}
	rest := s[len(shape):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
		isDigits(rest[1:3]) && isDigits(rest[4:6])
}

// PresenceFromPIDF maps the PIDF body of a NOTIFY to XMPP presences (S->X,
// RFC 8048 6.3 Table 2, CHECKLIST 4.5), one per tuple, in document order.
// from is the NOTIFY's From URI (the presentity; the PIDF entity is not
// trusted), to the JID of the watcher, contentLanguage the NOTIFY's
// Content-Language.
//
//   - From: SIPUserJID(from) with the resource Tuple.Resource gives (tuple
//     id without ID-, or the contact's gr; PRES-13c), To: to;
//   - <basic>open</basic> -> no type, closed -> unavailable; a tuple with
//     neither, or whose resource is not a valid resourcepart, is skipped;
//   - show (available only): the tuple's <show xmlns='jabber:client'/> when
//     it is a show value, else RPID activities of the tuple, else of the
//     dm:person (PRES-43b) if no tuple of the document has a <show/>;
//   - status: the tuple's note in the language asked for (contentLanguage:
//     same tag, then same primary subtag), else its note without xml:lang,
//     else its first; with no tuple note, the document's notes the same way;
//     Lang is the note's xml:lang, else contentLanguage;
//   - priority (available only): QToPriority of the contact priority.
//
// Two tuples for one resource give one presence: an open one over a closed
// one, then the higher priority, then the first. An empty result means no
// tuple could be mapped; per PRES-42 it is the caller's job to treat
// resources missing from a document as gone (PresenceState.Replace).
//
// Errors: those of SIPUserJID for from, ErrMalformedJID for to, and those
// of ParsePIDF.
func (a *Addressing) PresenceFromPIDF(from, to string, body []byte, contentLanguage string) ([]Presence, error) {
	fj, err := a.SIPUserJID(from)
	if err != nil {
		return nil, err
	}
	if _, err := ParseJID(to); err != nil {
		return nil, err
	}
	j, err := ParseJID(fj)
	if err != nil {
		return nil, err
	}
	bare := j.Bare()
	d, err := ParsePIDF(body)
	if err != nil {
		return nil, err
	}
	lang := firstLangTag(contentLanguage)
	// The person's activities speak for tuples without a show of their own,
	// unless the document maps show per tuple (a gateway's, as ours with
	// opt.RPID): there a tuple without <show/> is plainly available.
	personShow := activityShow(d.Activities)
	for _, t := range d.Tuples {
		if t.Show != "" {
			personShow = ""
			break
		}
	}
	out := make([]Presence, 0, len(d.Tuples))
	index := make(map[string]int, len(d.Tuples))
	for _, t := range d.Tuples {
		var p Presence
		switch t.Basic {
		case "open":
		case "closed":
			p.Type = PresenceUnavailable
		default:
			continue
		}
		pj := bare
		if pj.Resource = t.Resource(); pj.Resource != "" && checkResource(pj.Resource) != nil {
			continue
		}
		p.From, p.To, p.Lang = pj.String(), to, lang
		n, ok := pickNote(t.Notes, lang)
		if !ok {
			n, ok = pickNote(d.Notes, lang)
		}
		if ok {
			p.Status = n.Text
			if n.Lang != "" {
				p.Lang = n.Lang
			}
		}
		if p.Type == "" {
			switch {
			case t.Show != "" && validShow(t.Show):
				p.Show = t.Show
			case activityShow(t.Activities) != "":
				p.Show = activityShow(t.Activities)
			default:
				p.Show = personShow
			}
			if t.HasQ {
				p.Priority, p.HasPriority = QToPriority(t.Q), true
			}
		}
		if i, dup := index[p.From]; dup {
			if preferPresence(p, out[i]) {
				out[i] = p
			}
			continue
		}
		index[p.From] = len(out)
		out = append(out, p)
	}
	return out, nil
}

// preferPresence reports whether p should replace old for the same resource.
func preferPresence(p, old Presence) bool {
	if p.Type != old.Type {
		return p.Type == ""
	}
	return p.Type == "" && effectivePriority(p) > effectivePriority(old)
}

// pickNote chooses the note for lang: same tag, same primary subtag, no
// language, first.
func pickNote(notes []Note, lang string) (Note, bool) {
	if len(notes) == 0 {
		return Note{}, false
	}
	if lang != "" {
		for _, n := range notes {
			if strings.EqualFold(n.Lang, lang) {
				return n, true
			}
		}
		primary := primarySubtag(lang)
		for _, n := range notes {
			if n.Lang != "" && strings.EqualFold(primarySubtag(n.Lang), primary) {
				return n, true
			}
		}
	}
	for _, n := range notes {
		if n.Lang == "" {
			return n, true
		}
	}
	return notes[0], true
}

func primarySubtag(tag string) string {
	if i := strings.IndexByte(tag, '-'); i >= 0 {
		return tag[:i]
	}
	return tag
}

// PresenceState is the presence of one user: the available resources, kept
// sorted by JID. X->S it holds an XMPP user's resources for the NOTIFYs to
// SIP watchers (PRES-29); S->X a SIP presentity's last known presence, for
// probes (PRES-32a) and vanished tuples (PRES-42). The zero value is a user
// with nothing available; the first presence applied fixes the user. It is
// a plain value: guard it like any other (the session task loop owns it).
type PresenceState struct {
	user  JID        // bare; zero until the first presence
	avail []Presence // From in ParseJID form, sorted by From
}

// Apply records one presence: available adds or replaces its resource,
// unavailable removes it, and unavailable from the bare JID removes every
// resource. changed reports whether the state differs afterwards.
//
// Errors: ErrPresenceType (PRES-04), ErrMalformedJID, ErrBadPresence (see
// PresenceToPIDF; also a presence of another user than the state's).
func (s *PresenceState) Apply(p Presence) (changed bool, err error) {
	j, err := s.check(p)
	if err != nil {
		return false, err
	}
	s.user = j.Bare()
	p.From = j.String()
	i, found := s.find(p.From)
	switch {
	case p.Type == PresenceUnavailable && j.Resource == "":
		changed = len(s.avail) > 0
		s.avail = s.avail[:0]
	case p.Type == PresenceUnavailable:
		if found {
			s.avail = append(s.avail[:i], s.avail[i+1:]...)
		}
		changed = found
	case found:
		changed = s.avail[i] != p
		s.avail[i] = p
	default:
		s.avail = append(s.avail, Presence{})
		copy(s.avail[i+1:], s.avail[i:])
		s.avail[i] = p
		changed = true
	}
	return changed, nil
}

// Replace makes ps, the complete presence from one document, the new state
// and returns an unavailable presence (with the From and To of the old one)
// for every resource that was available and is not in ps at all: a tuple
// missing from a NOTIFY means that resource is gone (PRES-42). Resources in
// ps as unavailable are not returned again (the caller forwards ps itself),
// nor is anything when ps holds an unavailable presence from the bare JID.
// On error the state is unchanged.
func (s *PresenceState) Replace(ps []Presence) (gone []Presence, err error) {
	next := PresenceState{user: s.user}
	mentioned := make(map[string]bool, len(ps))
	allGone := false
	for _, p := range ps {
		j, err := next.check(p)
		if err != nil {
			return nil, err
		}
		mentioned[j.String()] = true
		allGone = allGone || j.Resource == "" && p.Type == PresenceUnavailable
		if _, err := next.Apply(p); err != nil {
			return nil, err
		}
	}
	if !allGone {
		for _, old := range s.avail {
			if !mentioned[old.From] {
				gone = append(gone, Presence{From: old.From, To: old.To, Type: PresenceUnavailable})
			}
		}
	}
	*s = next
	return gone, nil
}

// check validates p and that it belongs to the state's user.
func (s *PresenceState) check(p Presence) (JID, error) {
	j, err := checkPresence(p)
	if err != nil {
		return JID{}, err
	}
	if s.user.Domain != "" && j.Bare() != s.user {
		return JID{}, fmt.Errorf("%w: presence of %s in the state of %s", ErrBadPresence, j.Bare(), s.user)
	}
	return j, nil
}

// find returns where from is, or would be inserted, in the sorted list.
func (s *PresenceState) find(from string) (int, bool) {
	lo, hi := 0, len(s.avail)
	for lo < hi {
		m := (lo + hi) / 2
		if s.avail[m].From < from {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.avail) && s.avail[lo].From == from
}

// User returns the bare JID of the state's user, "" before the first
// presence.
func (s *PresenceState) User() string {
	if s.user.Domain == "" {
		return ""
	}
	return s.user.String()
}

// Available returns a copy of the available presences, sorted by From.
func (s *PresenceState) Available() []Presence {
	return append([]Presence(nil), s.avail...)
}

// Len returns the number of available resources.
func (s *PresenceState) Len() int { return len(s.avail) }
