package mapping

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestPriorityToQ(t *testing.T) {
	for _, tc := range []struct {
		p, q int
		ok   bool
	}{
		{-128, 0, false}, {-1, 0, false}, // negative: MUST NOT be mapped (TV-18)
		{0, 0, true}, {1, 7, true}, {2, 15, true}, {64, 503, true}, {126, 992, true}, {127, 1000, true},
		{200, 1000, true},
	} {
		q, ok := PriorityToQ(tc.p)
		if q != tc.q || ok != tc.ok {
			t.Errorf("PriorityToQ(%d) = %d, %v; want %d, %v", tc.p, q, ok, tc.q, tc.ok)
		}
	}
	prev := -1
	for p := 0; p <= 127; p++ { // distinct values between 0 and 1 (Table 1)
		q, _ := PriorityToQ(p)
		if q <= prev {
			t.Fatalf("PriorityToQ(%d) = %d, not above %d", p, q, prev)
		}
		prev = q
	}
}

func TestQToPriority(t *testing.T) {
	for _, tc := range []struct{ q, p int }{
		{0, 0}, {7, 1}, {15, 2}, {992, 126}, {1000, 127}, {500, 64}, {3, 0}, {4, 1}, {-5, 0}, {2000, 127},
	} {
		if got := QToPriority(tc.q); got != tc.p {
			t.Errorf("QToPriority(%d) = %d, want %d", tc.q, got, tc.p)
		}
	}
	for p := 0; p <= 127; p++ {
		q, _ := PriorityToQ(p)
		if back := QToPriority(q); back != p {
			t.Fatalf("QToPriority(PriorityToQ(%d)) = %d", p, back)
		}
	}
}

func TestShowActivity(t *testing.T) {
	for _, tc := range []struct{ show, act string }{
		{ShowAway, "away"}, {ShowXA, "away"}, {ShowDND, "busy"}, {ShowChat, ""}, {"", ""},
	} {
		if got := showActivity(tc.show); got != tc.act {
			t.Errorf("showActivity(%q) = %q, want %q", tc.show, got, tc.act)
		}
	}
	for _, tc := range []struct {
		acts []string
		show string
	}{
		{[]string{"away"}, ShowAway}, {[]string{"holiday"}, ShowXA}, {[]string{"vacation"}, ShowXA},
		{[]string{"busy"}, ShowDND}, {[]string{"on-the-phone"}, ShowDND}, {[]string{"meeting"}, ShowDND},
		{[]string{"sleeping", "meeting", "away"}, ShowDND}, {[]string{"unknown"}, ""}, {nil, ""},
	} {
		if got := activityShow(tc.acts); got != tc.show {
			t.Errorf("activityShow(%v) = %q, want %q", tc.acts, got, tc.show)
		}
	}
}

// TestPresenceToPIDFTable1 walks the rows of CHECKLIST 4.4 (RFC 8048 6.2
// Table 1), one document each.
func TestPresenceToPIDFTable1(t *testing.T) {
	a := newAddressing(t, testConfig)
	const user = "juliet@example.com"
	base := Presence{From: tvJuliet, To: tvRomeo}
	with := func(f func(*Presence)) []Presence { p := base; f(&p); return []Presence{p} }
	open := Tuple{ID: "ID-yn0cl4bnw0yr3vym", Basic: "open", Contact: "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym"}
	tuple := func(f func(*Tuple)) PIDF {
		tp := open
		f(&tp)
		return PIDF{Entity: "pres:juliet@example.com", Tuples: []Tuple{tp}}
	}
	for _, tc := range []struct {
		row  string
		ps   []Presence
		opt  PIDFOptions
		want PIDF
		lang string
	}{
		{"no type -> open; resource -> ID-resource; from -> entity", with(func(*Presence) {}), PIDFOptions{}, tuple(func(*Tuple) {}), ""},
		{"unavailable -> closed", with(func(p *Presence) {
			p.Type = PresenceUnavailable
			p.Show = ShowAway
			p.Priority, p.HasPriority = 5, true
		}), PIDFOptions{},
			tuple(func(tp *Tuple) { tp.Basic = "closed" }), ""},
		{"to and id: no mapping", with(func(p *Presence) { p.To = "someone@else.example" }), PIDFOptions{}, tuple(func(*Tuple) {}), ""},
		{"xml:lang -> Content-Language and note xml:lang", with(func(p *Presence) { p.Lang = "en"; p.Status = "s" }), PIDFOptions{},
			tuple(func(tp *Tuple) { tp.Notes = []Note{{"en", "s"}} }), "en"},
		{"xml:lang that is not a tag is dropped", with(func(p *Presence) { p.Lang = "e n"; p.Status = "s" }), PIDFOptions{},
			tuple(func(tp *Tuple) { tp.Notes = []Note{{"", "s"}} }), ""},
		{"priority -> contact priority", with(func(p *Presence) { p.Priority, p.HasPriority = 126, true }), PIDFOptions{},
			tuple(func(tp *Tuple) { tp.Q, tp.HasQ = 992, true }), ""},
		{"negative priority MUST NOT be mapped", with(func(p *Presence) { p.Priority, p.HasPriority = -1, true }), PIDFOptions{},
			tuple(func(*Tuple) {}), ""},
		{"no priority: no attribute", with(func(p *Presence) { p.Priority = 9 }), PIDFOptions{}, tuple(func(*Tuple) {}), ""},
		{"show -> jabber:client show", with(func(p *Presence) { p.Show = ShowXA }), PIDFOptions{},
			tuple(func(tp *Tuple) { tp.Show = ShowXA }), ""},
		{"show -> RPID activity when asked", with(func(p *Presence) { p.Show = ShowXA }), PIDFOptions{RPID: true},
			PIDF{Entity: "pres:juliet@example.com", Tuples: []Tuple{{ID: open.ID, Basic: "open", Show: ShowXA, Contact: open.Contact}}, Activities: []string{"away"}}, ""},
		{"chat has no RPID activity", with(func(p *Presence) { p.Show = ShowChat }), PIDFOptions{RPID: true},
			tuple(func(tp *Tuple) { tp.Show = ShowChat }), ""},
		{"status -> note", with(func(p *Presence) { p.Status = "Wherefore art thou?" }), PIDFOptions{},
			tuple(func(tp *Tuple) { tp.Notes = []Note{{"", "Wherefore art thou?"}} }), ""},
		{"timestamp", with(func(*Presence) {}), PIDFOptions{Timestamp: "2026-01-02T03:04:05+01:00"},
			tuple(func(tp *Tuple) { tp.Timestamp = "2026-01-02T03:04:05+01:00" }), ""},
		{"bare JID: the user as a whole", []Presence{{From: user}}, PIDFOptions{},
			PIDF{Entity: "pres:juliet@example.com", Tuples: []Tuple{{ID: "ID-", Basic: "open", Contact: "sip:juliet@example.com"}}}, ""},
		{"nothing available: closed", nil, PIDFOptions{},
			PIDF{Entity: "pres:juliet@example.com", Tuples: []Tuple{{ID: "ID-", Basic: "closed", Contact: "sip:juliet@example.com"}}}, ""},
	} {
		t.Run(tc.row, func(t *testing.T) {
			got, lang, err := a.pidfFromPresence(user, tc.ps, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) || lang != tc.lang {
				t.Errorf("\n got %+v %q\nwant %+v %q", got, lang, tc.want, tc.lang)
			}
			body, lang2, err := a.PresenceToPIDF(user, tc.ps, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePIDF(body)
			if err != nil || !reflect.DeepEqual(back, tc.want) || lang2 != tc.lang {
				t.Errorf("PresenceToPIDF gives %s (%v), parsed %+v", body, err, back)
			}
		})
	}
}

func TestPresenceToPIDFEscaping(t *testing.T) {
	a := newAddressing(t, testConfig)
	got, _, err := a.pidfFromPresence(`d\27artagnan@example.com`, []Presence{{From: `d\27artagnan@example.com/my phone`}}, PIDFOptions{})
	want := PIDF{Entity: "pres:d'artagnan@example.com", Tuples: []Tuple{{ID: "ID-my_20phone", Basic: "open", Contact: "sip:d'artagnan@example.com;gr=my%20phone"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v %v\nwant %+v", got, err, want)
	}
}

// TestPresenceToPIDFState: every available resource is a tuple (PRES-29),
// the one just gone stays as closed (PRES-41), and the highest priority
// picks the Content-Language and the RPID activity.
func TestPresenceToPIDFState(t *testing.T) {
	a := newAddressing(t, testConfig)
	var s PresenceState
	for _, p := range threeResources[:2] {
		if _, err := s.Apply(p); err != nil {
			t.Fatal(err)
		}
	}
	ps := append(s.Available(), threeResources[2])
	got, lang, err := a.pidfFromPresence("juliet@example.com", ps, PIDFOptions{RPID: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids, basics []string
	for _, tp := range got.Tuples {
		ids, basics = append(ids, tp.ID), append(basics, tp.Basic)
	}
	if fmt.Sprint(ids, basics) != "[ID-balcony ID-chamber ID-tomb] [open open closed]" || lang != "en" ||
		!reflect.DeepEqual(got.Activities, []string{"busy"}) {
		t.Errorf("got %v %v %q %v", ids, basics, lang, got.Activities)
	}
	// Equal priorities: the first wins.
	_, lang, _ = a.pidfFromPresence("juliet@example.com", []Presence{
		{From: "juliet@example.com/a", Lang: "fr"}, {From: "juliet@example.com/b", Lang: "de", HasPriority: true},
	}, PIDFOptions{})
	if lang != "fr" {
		t.Errorf("equal priorities: Content-Language %q, want fr", lang)
	}
	// Only closed tuples: no Content-Language.
	_, lang, _ = a.pidfFromPresence("juliet@example.com", threeResources[2:], PIDFOptions{})
	if lang != "" {
		t.Errorf("closed only: Content-Language %q", lang)
	}
}

func TestPresenceToPIDFErrors(t *testing.T) {
	a := newAddressing(t, testConfig)
	ok := Presence{From: tvJuliet}
	for _, tc := range []struct {
		name string
		user string
		ps   []Presence
		opt  PIDFOptions
		want error
	}{
		{"user not a JID", "@example.com", nil, PIDFOptions{}, ErrMalformedJID},
		{"user with resource", tvJuliet, nil, PIDFOptions{}, ErrBadPresence},
		{"user not served", "romeo@example.net", nil, PIDFOptions{}, ErrUnservedDomain},
		{"user without localpart", "example.com", nil, PIDFOptions{}, ErrNoUser},
		{"subscribe", "juliet@example.com", []Presence{{From: tvJuliet, Type: "subscribe"}}, PIDFOptions{}, ErrPresenceType},
		{"probe", "juliet@example.com", []Presence{{From: tvJuliet, Type: "probe"}}, PIDFOptions{}, ErrPresenceType},
		{"error", "juliet@example.com", []Presence{{From: tvJuliet, Type: "error"}}, PIDFOptions{}, ErrPresenceType},
		{"other user (PRES-31)", "juliet@example.com", []Presence{ok, {From: "nurse@example.com/x"}}, PIDFOptions{}, ErrBadPresence},
		{"resource twice", "juliet@example.com", []Presence{ok, {From: tvJuliet, Type: PresenceUnavailable}}, PIDFOptions{}, ErrBadPresence},
		{"bad from", "juliet@example.com", []Presence{{From: "juliet@example.com/"}}, PIDFOptions{}, ErrMalformedJID},
		{"bad show", "juliet@example.com", []Presence{{From: tvJuliet, Show: "busy"}}, PIDFOptions{}, ErrBadPresence},
		{"priority too high", "juliet@example.com", []Presence{{From: tvJuliet, Priority: 128, HasPriority: true}}, PIDFOptions{}, ErrBadPresence},
		{"priority too low", "juliet@example.com", []Presence{{From: tvJuliet, Priority: -129, HasPriority: true}}, PIDFOptions{}, ErrBadPresence},
		{"status with NUL", "juliet@example.com", []Presence{{From: tvJuliet, Status: "a\x00"}}, PIDFOptions{}, ErrBadPresence},
		{"timestamp", "juliet@example.com", []Presence{ok}, PIDFOptions{Timestamp: "yesterday"}, ErrBadPresence},
		{"from without localpart", "juliet@example.com", []Presence{{From: "example.com"}}, PIDFOptions{}, ErrBadPresence},
		{"too many resources", "juliet@example.com", manyResources(PIDFMaxTuples + 1), PIDFOptions{}, ErrPIDFTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := a.PresenceToPIDF(tc.user, tc.ps, tc.opt)
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func manyResources(n int) []Presence {
	ps := make([]Presence, n)
	for i := range ps {
		ps[i].From = fmt.Sprintf("juliet@example.com/r%d", i)
	}
	return ps
}

func TestValidDateTime(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"2026-01-02T03:04:05Z", true}, {"2026-01-02T03:04:05.123456789Z", true}, {"2026-01-02T03:04:05-07:00", true},
		{"2026-01-02T03:04:05.5+01:00", true},
		{"2026-01-02T03:04:05", false}, {"2026-01-02 03:04:05Z", false}, {"2026-01-02T03:04:05.Z", false},
		{"2026-01-02T03:04:05+0100", false}, {"2026-1-02T03:04:05Z", false}, {"", false}, {"2026-01-02T03:04:05Z\n", false},
	} {
		if got := validDateTime(tc.s); got != tc.ok {
			t.Errorf("validDateTime(%q) = %v", tc.s, got)
		}
	}
}

// TestPresenceFromPIDFTable2 walks the rows of CHECKLIST 4.5 (RFC 8048 6.3
// Table 2).
func TestPresenceFromPIDFTable2(t *testing.T) {
	a := newAddressing(t, testConfig)
	doc := func(tuples string) []byte {
		return []byte(`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:romeo@example.net">` + tuples + `</presence>`)
	}
	const romeo = tvRomeo + "/x"
	for _, tc := range []struct {
		row      string
		from, to string
		body     []byte
		lang     string
		want     []Presence
	}{
		{"open -> no type", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com"}}},
		{"closed -> unavailable", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>closed</basic><show xmlns="jabber:client">away</show></status><contact priority="1">c</contact></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com", Type: PresenceUnavailable}}},
		{"Content-Language -> xml:lang", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status></tuple>`), "en-US, fr",
			[]Presence{{From: romeo, To: "juliet@example.com", Lang: "en-US"}}},
		{"From -> from; resource from the id", "sip:romeo@example.net;gr=ignored", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status><contact>sip:romeo@example.net;gr=y</contact></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com"}}},
		{"resource from the contact gr", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="a1"><status><basic>open</basic></status><contact>sip:romeo@example.net;gr=x</contact></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com"}}},
		{"no resource: bare JID", "sip:bob@sip.example.com", "juliet@example.com",
			doc(`<tuple id="ID-"><status><basic>closed</basic></status></tuple>`), "",
			[]Presence{{From: "bob@sip.example.com", To: "juliet@example.com", Type: PresenceUnavailable}}},
		{"To -> to (a full JID for a probe, PRES-33b)", "sip:romeo@example.net", "juliet@example.com/chamber",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com/chamber"}}},
		{"contact priority -> priority", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status><contact priority="0.5">c</contact></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com", Priority: 64, HasPriority: true}}},
		{"note -> status", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status><note>But soft!</note></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com", Status: "But soft!"}}},
		{"jabber:client show -> show", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic><show xmlns="jabber:client">dnd</show></status></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com", Show: ShowDND}}},
		{"unknown show ignored, RPID used", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic><show xmlns="jabber:client">busy</show>` +
				`<activities xmlns="urn:ietf:params:xml:ns:pidf:rpid"><vacation/></activities></status></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com", Show: ShowXA}}},
		{"person activities -> show, unless a tuple has a show", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status></tuple><tuple id="ID-y"><status><basic>open</basic>` +
				`<show xmlns="jabber:client">chat</show></status></tuple><person xmlns="urn:ietf:params:xml:ns:pidf:data-model" id="p">` +
				`<activities xmlns="urn:ietf:params:xml:ns:pidf:rpid"><meeting/></activities></person>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com"}, {From: tvRomeo + "/y", To: "juliet@example.com", Show: ShowChat}}},
		{"person activities -> show", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>open</basic></status></tuple><person xmlns="urn:ietf:params:xml:ns:pidf:data-model" id="p">` +
				`<activities xmlns="urn:ietf:params:xml:ns:pidf:rpid"><meeting/></activities></person>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com", Show: ShowDND}}},
		{"no basic, or an unknown one: skipped", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-a"><status/></tuple><tuple id="ID-b"><status><basic>Open</basic></status></tuple>`), "",
			[]Presence{}},
		{"resource that is no resourcepart: skipped", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="t"><status><basic>open</basic></status><contact>sip:r@example.net;gr=` + strings.Repeat("x", 1024) + `</contact></tuple>`), "",
			[]Presence{}},
		{"one resource twice: open wins, then priority", "sip:romeo@example.net", "juliet@example.com",
			doc(`<tuple id="ID-x"><status><basic>closed</basic></status></tuple>` +
				`<tuple id="a"><status><basic>open</basic></status><contact priority="0.1">sip:r@example.net;gr=x</contact></tuple>` +
				`<tuple id="b"><status><basic>open</basic></status><contact priority="0.2">sip:r@example.net;gr=x</contact></tuple>` +
				`<tuple id="c"><status><basic>open</basic></status><contact priority="0.2">sip:r@example.net;gr=x</contact><note>third</note></tuple>`), "",
			[]Presence{{From: romeo, To: "juliet@example.com", Priority: 25, HasPriority: true}}},
		{"no tuples", "sip:romeo@example.net", "juliet@example.com", doc(``), "", []Presence{}},
	} {
		t.Run(tc.row, func(t *testing.T) {
			got, err := a.PresenceFromPIDF(tc.from, tc.to, tc.body, tc.lang)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPresenceFromPIDFFixtures(t *testing.T) {
	a := newAddressing(t, testConfig)
	got, err := a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", readPIDF(t, "prefixes.xml"), "en")
	if err != nil {
		t.Fatal(err)
	}
	want := []Presence{
		{From: tvRomeo + "/balcony", To: "juliet@example.com", Show: ShowChat, Status: "Under the <balcony>", Lang: "en", Priority: 64, HasPriority: true},
		// The person is on vacation, but a tuple has a jabber:client show:
		// the document maps show per tuple, and cell has none.
		{From: tvRomeo + "/cell", To: "juliet@example.com", Status: "On holiday", Lang: "en"},
		{From: tvRomeo + "/desk", To: "juliet@example.com", Type: PresenceUnavailable, Status: "On holiday", Lang: "en"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("prefixes.xml\n got %+v\nwant %+v", got, want)
	}
	got, err = a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", readPIDF(t, "rpid-client.xml"), "")
	if err != nil {
		t.Fatal(err)
	}
	want = []Presence{{From: tvRomeo + "/t8f2c0a1", To: "juliet@example.com", Show: ShowDND, Status: "In a call"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rpid-client.xml\n got %+v\nwant %+v", got, want)
	}
}

func TestPresenceFromPIDFErrors(t *testing.T) {
	a := newAddressing(t, testConfig)
	good := readPIDF(t, "tv21b.xml")
	for _, tc := range []struct {
		name, from, to string
		body           []byte
		want           error
	}{
		{"served domain posing as SIP user", "sip:juliet@example.com", "juliet@example.com", good, ErrLoop},
		{"sips", "sips:romeo@example.net", "juliet@example.com", good, ErrSIPS},
		{"bad to", "sip:romeo@example.net", "juliet@", good, ErrMalformedJID},
		{"bad body", "sip:romeo@example.net", "juliet@example.com", []byte("<presence/>"), ErrBadPIDF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.PresenceFromPIDF(tc.from, tc.to, tc.body, ""); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPickNote(t *testing.T) {
	notes := []Note{{"fr", "Bonjour"}, {"", "Hi"}, {"en-GB", "Hello"}, {"de-AT", "Servus"}}
	for _, tc := range []struct {
		notes []Note
		lang  string
		want  string
		ok    bool
	}{
		{notes, "fr", "Bonjour", true}, {notes, "EN-gb", "Hello", true}, {notes, "en", "Hello", true},
		{notes, "de-DE", "Servus", true}, {notes, "it", "Hi", true}, {notes, "", "Hi", true},
		{notes[2:], "", "Hello", true}, {nil, "en", "", false},
	} {
		n, ok := pickNote(tc.notes, tc.lang)
		if n.Text != tc.want || ok != tc.ok {
			t.Errorf("pickNote(%v, %q) = %+v, %v; want %q", tc.notes, tc.lang, n, ok, tc.want)
		}
	}
}

func TestPresenceStateApply(t *testing.T) {
	var s PresenceState
	if s.User() != "" || s.Len() != 0 || s.Available() != nil {
		t.Fatalf("zero state: %q %d %v", s.User(), s.Len(), s.Available())
	}
	steps := []struct {
		p       Presence
		changed bool
		err     error
		want    string // From/Show of what is available afterwards
	}{
		{Presence{From: "juliet@EXAMPLE.com/b", Show: ShowAway}, true, nil, "juliet@example.com/b:away"},
		{Presence{From: "juliet@example.com/a"}, true, nil, "juliet@example.com/a: juliet@example.com/b:away"},
		{Presence{From: "juliet@example.com/b", Show: ShowAway}, false, nil, "juliet@example.com/a: juliet@example.com/b:away"},
		{Presence{From: "juliet@example.com/b", Show: ShowDND}, true, nil, "juliet@example.com/a: juliet@example.com/b:dnd"},
		{Presence{From: "juliet@example.com/c", Type: PresenceUnavailable}, false, nil, "juliet@example.com/a: juliet@example.com/b:dnd"},
		{Presence{From: "juliet@example.com/a", Type: PresenceUnavailable}, true, nil, "juliet@example.com/b:dnd"},
		{Presence{From: "nurse@example.com/a"}, false, ErrBadPresence, "juliet@example.com/b:dnd"},
		{Presence{From: "juliet@example.com/a", Type: "subscribed"}, false, ErrPresenceType, "juliet@example.com/b:dnd"},
		{Presence{From: "juliet@example.com/a", Show: "away "}, false, ErrBadPresence, "juliet@example.com/b:dnd"},
		{Presence{From: "juliet@example.com/0"}, true, nil, "juliet@example.com/0: juliet@example.com/b:dnd"},
		{Presence{From: "juliet@example.com", Type: PresenceUnavailable}, true, nil, ""},
		{Presence{From: "juliet@example.com", Type: PresenceUnavailable}, false, nil, ""},
		{Presence{From: "nurse@example.com/a"}, false, ErrBadPresence, ""}, // the user stays fixed
	}
	for i, st := range steps {
		changed, err := s.Apply(st.p)
		if !errors.Is(err, st.err) || changed != st.changed {
			t.Fatalf("step %d: Apply(%+v) = %v, %v; want %v, %v", i, st.p, changed, err, st.changed, st.err)
		}
		var got []string
		for _, p := range s.Available() {
			got = append(got, p.From+":"+p.Show)
		}
		if strings.Join(got, " ") != st.want || s.Len() != len(got) {
			t.Fatalf("step %d: available %v, want %s", i, got, st.want)
		}
	}
	if s.User() != "juliet@example.com" {
		t.Errorf("User() = %q", s.User())
	}
	// Available is a copy.
	s.Apply(Presence{From: "juliet@example.com/a"})
	av := s.Available()
	av[0].Show = ShowXA
	if s.Available()[0].Show != "" {
		t.Error("Available aliases the state")
	}
}

func TestPresenceStateReplace(t *testing.T) {
	r := func(res string, typ ...string) Presence {
		p := Presence{From: tvRomeo + "/" + res, To: "juliet@example.com"}
		if res == "" {
			p.From = tvRomeo
		}
		if len(typ) > 0 {
			p.Type = typ[0]
		}
		return p
	}
	froms := func(ps []Presence) string {
		var s []string
		for _, p := range ps {
			s = append(s, strings.TrimPrefix(p.From, tvRomeo)+p.Type)
		}
		return strings.Join(s, " ")
	}
	var s PresenceState
	for _, step := range []struct {
		ps          []Presence
		gone, avail string
		err         error
	}{
		{[]Presence{r("a"), r("b")}, "", "/a /b", nil},
		{[]Presence{r("b"), r("c")}, "/aunavailable", "/b /c", nil},                 // a vanished (PRES-42)
		{[]Presence{r("b", PresenceUnavailable)}, "/cunavailable", "", nil},         // b is in ps, c is not
		{[]Presence{r("d"), {From: "nurse@example.com/x"}}, "", "", ErrBadPresence}, // unchanged on error
		{[]Presence{r("d"), r("e")}, "", "/d /e", nil},                              //
		{[]Presence{r("", PresenceUnavailable)}, "", "", nil},                       // all gone at once
		{[]Presence{r("f"), r("f", PresenceUnavailable), r("g")}, "", "/g", nil},    // document order
		{[]Presence{r("g"), {From: tvRomeo + "/h", Type: "probe"}}, "", "/g", ErrPresenceType},
		{nil, "/gunavailable", "", nil},
	} {
		gone, err := s.Replace(step.ps)
		if !errors.Is(err, step.err) || froms(gone) != step.gone || froms(s.Available()) != step.avail {
			t.Fatalf("Replace(%s) = %s, %v; available %s; want %s, %v, %s",
				froms(step.ps), froms(gone), err, froms(s.Available()), step.gone, step.err, step.avail)
		}
		for _, g := range gone {
			if g.To != "juliet@example.com" {
				t.Errorf("gone presence lost its To: %+v", g)
			}
		}
	}
}

// TestPresenceRoundTrip is the round-trip property: an XMPP user's state
// -> PIDF -> XMPP presences gives the same resources, show, status (with
// its language) and priority. What Table 1 does not carry is the
// exception: a negative priority is not mapped, and a language without a
// status has nowhere to go but Content-Language.
func TestPresenceRoundTrip(t *testing.T) {
	a := newAddressing(t, testConfig)
	rng := rand.New(rand.NewPCG(4, 8048))
	resources := []string{"yn0cl4bnw0yr3vym", "balcony", "my phone", "tschüss", "a_b", "1", "x/y@z", "ID-", "_41"}
	shows := []string{"", ShowAway, ShowChat, ShowDND, ShowXA}
	statuses := []string{"", "Wherefore art thou?", "  spaced  ", "a\r\nb", "<&>\"'", "ünïcødé 😀"}
	langs := []string{"", "en", "fr-CA", "not a tag"}
	for i := range 500 {
		var s PresenceState
		for _, res := range resources {
			if rng.IntN(3) == 0 {
				continue
			}
			p := Presence{
				From: "juliet@example.com/" + res, Show: shows[rng.IntN(len(shows))],
				Status: statuses[rng.IntN(len(statuses))], Lang: langs[rng.IntN(len(langs))],
			}
			if rng.IntN(4) > 0 {
				p.Priority, p.HasPriority = rng.IntN(256)-128, true
			}
			if _, err := s.Apply(p); err != nil {
				t.Fatal(err)
			}
		}
		body, _, err := a.PresenceToPIDF("juliet@example.com", s.Available(), PIDFOptions{RPID: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		// The document read back as a SIP presentity's: compare everything
		// but the bare JID.
		ps, err := a.PresenceFromPIDF("sip:juliet@example.net", "romeo@example.com", body, "")
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var got []Presence
		closed := 0
		for _, p := range ps {
			if p.Type != "" {
				closed++
				continue
			}
			bare, res, _ := strings.Cut(p.From, "/")
			if bare != `juliet\40example.net@sip.example.com` || p.To != "romeo@example.com" {
				t.Fatalf("from %q to %q", p.From, p.To)
			}
			p.From, p.To = "juliet@example.com/"+res, ""
			got = append(got, p)
		}
		want := s.Available()
		for j := range want {
			if want[j].HasPriority && want[j].Priority < 0 {
				want[j].Priority, want[j].HasPriority = 0, false
			}
			if want[j].Status == "" || !validLangTag(want[j].Lang) {
				want[j].Lang = ""
			}
		}
		if len(want) == 0 {
			if closed != 1 || len(ps) != 1 || ps[0].From != `juliet\40example.net@sip.example.com` {
				t.Fatalf("empty state gave %s: %+v", body, ps)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip of %s\n got %+v\nwant %+v", body, got, want)
		}
	}
}
