package mapping

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Golden tests for the presence vectors of CHECKLIST section 8 (TV-17,
// TV-18, TV-19, TV-21). As in golden_test.go, the vectors live in a
// domain-mapping world: the SIP user romeo@example.net is tvRomeo here.
//
// CHECKLIST section 9: RFC 8048 Table 1 no longer maps the stanza id to
// CSeq, so Presence has no id and nothing here expects one. The fixtures
// are written from the vectors, not copied from the RFC flows.

var updatePIDF = flag.Bool("update-pidf", false, "rewrite the generated PIDF golden files in testdata/pidf")

// golden compares got with testdata/pidf/name, or rewrites the file with
// -update-pidf.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "pidf", name)
	if *updatePIDF {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update-pidf after checking):\n got %s\nwant %s", name, got, want)
	}
}

// tv17Presence is TV-17's input: <presence
// from='juliet@example.com/yn0cl4bnw0yr3vym' to='romeo@example.net'
// xml:lang='en'><show>away</show><status>Wherefore art
// thou?</status><priority>1</priority></presence>.
var tv17Presence = Presence{
	From: tvJuliet, To: tvRomeo, Lang: "en",
	Show: ShowAway, Status: "Wherefore art thou?", Priority: 1, HasPriority: true,
}

func TestGoldenTV17(t *testing.T) {
	a := newAddressing(t, testConfig)
	body, lang, err := a.PresenceToPIDF("juliet@example.com", []Presence{tv17Presence}, PIDFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lang != "en" {
		t.Errorf("Content-Language %q, want en", lang)
	}
	golden(t, "tv17.xml", body)
	// The body of the vector, as the checklist writes it, is the same
	// document: same entity, tuple, status, show, contact and note.
	want, err := ParsePIDF(readPIDF(t, "tv17-checklist.xml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePIDF(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TV-17\n got %+v\nwant %+v", got, want)
	}
}

func TestGoldenTV18(t *testing.T) {
	a := newAddressing(t, testConfig)
	for _, tc := range []struct {
		priority int
		attr     string // "" = no priority attribute
	}{{-1, ""}, {0, "0"}, {1, "0.007"}, {2, "0.015"}, {126, "0.992"}, {127, "1"}} {
		p := tv17Presence
		p.Priority = tc.priority
		body, _, err := a.PresenceToPIDF("juliet@example.com", []Presence{p}, PIDFOptions{})
		if err != nil {
			t.Fatal(err)
		}
		attr := []byte(`<contact priority="` + tc.attr + `">`)
		if tc.attr == "" {
			attr = []byte(`<contact>`)
		}
		if !bytes.Contains(body, attr) {
			t.Errorf("TV-18 priority %d: want %s in %s", tc.priority, attr, body)
		}
	}
	// PIDF -> XMPP: 0.992 -> 126, 0.007 -> 1.
	for _, tc := range []struct {
		attr string
		want int
	}{{"0.992", 126}, {"0.007", 1}} {
		body := []byte(`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:romeo@example.net"><tuple id="ID-x">` +
			`<status><basic>open</basic></status><contact priority="` + tc.attr + `">sip:romeo@example.net</contact></tuple></presence>`)
		ps, err := a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", body, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 || !ps[0].HasPriority || ps[0].Priority != tc.want {
			t.Errorf("TV-18 %s: %+v, want priority %d", tc.attr, ps, tc.want)
		}
	}
}

func TestGoldenTV19(t *testing.T) {
	a := newAddressing(t, testConfig)
	got, err := a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", readPIDF(t, "tv19.xml"), "")
	if err != nil {
		t.Fatal(err)
	}
	// <presence from='romeo@example.net/orchard' to='juliet@example.com' type='unavailable'/>
	want := []Presence{{From: tvRomeo + "/orchard", To: "juliet@example.com", Type: PresenceUnavailable}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TV-19\n got %+v\nwant %+v", got, want)
	}
}

func TestGoldenTV21(t *testing.T) {
	// (a) pending;expires=3600: answered 200, nothing to XMPP (PRES-12).
	s, err := ParseSubscriptionState("pending;expires=3600")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SubscriptionState{State: SubStatePending, Expires: 3600, HasExpires: true}); s != want || s.Action() != ActionNone {
		t.Errorf("TV-21a: %+v %v", s, s.Action())
	}
	// (b) active;expires=3599 with tuple ID-dr4hcr0st3lup4c open: after the
	// subscribed stanza (component's), the presence of the tuple.
	s, err = ParseSubscriptionState("active;expires=3599")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SubscriptionState{State: SubStateActive, Expires: 3599, HasExpires: true}); s != want || s.Action() != ActionNone {
		t.Errorf("TV-21b: %+v %v", s, s.Action())
	}
	a := newAddressing(t, testConfig)
	got, err := a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", readPIDF(t, "tv21b.xml"), "")
	if err != nil {
		t.Fatal(err)
	}
	// <presence from='romeo@example.net/dr4hcr0st3lup4c' to='juliet@example.com'/>
	want := []Presence{{From: tvRomeo + "/dr4hcr0st3lup4c", To: "juliet@example.com"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TV-21b\n got %+v\nwant %+v", got, want)
	}
}

// TestGoldenDocuments pins two more generated documents: no resource
// available (PRES-26, TV-23b), and three resources, one just gone (PRES-29,
// PRES-41), with a timestamp and RPID (PRES-40e, PRES-43a).
func TestGoldenDocuments(t *testing.T) {
	a := newAddressing(t, testConfig)
	body, lang, err := a.PresenceToPIDF("juliet@example.com", nil, PIDFOptions{Timestamp: "2026-01-02T03:04:05.123Z"})
	if err != nil {
		t.Fatal(err)
	}
	if lang != "" {
		t.Errorf("offline Content-Language %q", lang)
	}
	golden(t, "offline.xml", body)

	body, lang, err = a.PresenceToPIDF("juliet@example.com", threeResources, PIDFOptions{Timestamp: "2026-01-02T03:04:05.123456789+02:00", RPID: true})
	if err != nil {
		t.Fatal(err)
	}
	if lang != "en" {
		t.Errorf("Content-Language %q, want en (the balcony resource has the highest priority)", lang)
	}
	golden(t, "three-resources.xml", body)
}

// threeResources: two available resources and one that has just gone.
var threeResources = []Presence{
	{From: "juliet@example.com/balcony", Show: ShowDND, Status: "Parting is such sweet sorrow", Lang: "en", Priority: 10, HasPriority: true},
	{From: "juliet@example.com/chamber", Status: "Ay me!", Lang: "en-GB", Priority: -1, HasPriority: true},
	{From: "juliet@example.com/tomb", Type: PresenceUnavailable, Status: "gone"},
}
