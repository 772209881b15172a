package mapping

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readPIDF(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pidf", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTupleID(t *testing.T) {
	for _, tc := range []struct{ resource, id string }{
		{"yn0cl4bnw0yr3vym", "ID-yn0cl4bnw0yr3vym"}, // TV-17
		{"orchard", "ID-orchard"},                   // TV-19
		{"", "ID-"},                                 // the user as a whole
		{"1st", "ID-1st"},                           // the reason for the prefix
		{"my phone", "ID-my_20phone"},
		{"a_b", "ID-a_5Fb"},
		{"a:b/c@d", "ID-a_3Ab_2Fc_40d"},
		{"tschüss", "ID-tsch_C3_BCss"},
		{"Gajim.X-1", "ID-Gajim.X-1"},
	} {
		if got := TupleID(tc.resource); got != tc.id {
			t.Errorf("TupleID(%q) = %q, want %q", tc.resource, got, tc.id)
		}
		if got := (Tuple{ID: tc.id}).Resource(); got != tc.resource {
			t.Errorf("Resource of id %q = %q, want %q", tc.id, got, tc.resource)
		}
	}
}

func TestTupleResource(t *testing.T) {
	for _, tc := range []struct{ id, contact, want string }{
		{"ID-orchard", "", "orchard"},
		{"ID-orchard", "sip:romeo@example.net;gr=balcony", "orchard"}, // the id wins
		{"ID-home_phone", "", "home_phone"},                           // not TupleID's form: as written
		{"ID-a_41", "", "a_41"},                                       // escapes only what must be
		{"ID-a_c3", "", "a_c3"},                                       // lower-case hex is not ours
		{"ID-_FF", "", "_FF"},                                         // not UTF-8
		{"ID-", "", ""},
		{"ID-", "sip:romeo@example.net;gr=x", "x"},
		{"t1", "sip:romeo@example.net;gr=dr4hcr0st3lup4c", "dr4hcr0st3lup4c"},
		{"t1", "sip:romeo@example.net;gr=my%20phone", "my phone"},
		{"t1", "sip:romeo@example.net", "t1"},
		{"t1", "mailto:romeo@example.net", "t1"},
		{"t1", "sip:romeo@example.net;gr", "t1"},
	} {
		if got := (Tuple{ID: tc.id, Contact: tc.contact}).Resource(); got != tc.want {
			t.Errorf("Resource(%q, %q) = %q, want %q", tc.id, tc.contact, got, tc.want)
		}
	}
}

func TestParseQ(t *testing.T) {
	for _, tc := range []struct {
		in string
		q  int
		ok bool
	}{
		{"0", 0, true}, {"1", 1000, true}, {"0.007", 7, true}, {"0.015", 15, true}, {"0.992", 992, true},
		{"0.5", 500, true}, {"0.50", 500, true}, {"0.", 0, true}, {"1.", 1000, true}, {"1.000", 1000, true},
		{" 0.8 ", 800, true},
		{"", 0, false}, {"1.001", 0, false}, {"0.0001", 0, false}, {"2", 0, false}, {"-0.5", 0, false},
		{".5", 0, false}, {"0,5", 0, false}, {"0.5x", 0, false}, {"01", 0, false}, {"1e0", 0, false},
	} {
		q, ok := parseQ(tc.in)
		if q != tc.q || ok != tc.ok {
			t.Errorf("parseQ(%q) = %d, %v; want %d, %v", tc.in, q, ok, tc.q, tc.ok)
		}
	}
}

func TestFormatQ(t *testing.T) {
	for _, tc := range []struct {
		q    int
		want string
	}{
		{0, "0"}, {7, "0.007"}, {15, "0.015"}, {992, "0.992"}, {1000, "1"}, {500, "0.5"}, {10, "0.01"},
		{-3, "0"}, {1200, "1"},
	} {
		if got := formatQ(tc.q); got != tc.want {
			t.Errorf("formatQ(%d) = %q, want %q", tc.q, got, tc.want)
		}
	}
	for q := 0; q <= 1000; q++ {
		if back, ok := parseQ(formatQ(q)); !ok || back != q {
			t.Fatalf("parseQ(formatQ(%d)) = %d, %v", q, back, ok)
		}
	}
}

func TestParsePIDF(t *testing.T) {
	const ns = `xmlns="urn:ietf:params:xml:ns:pidf"`
	for _, tc := range []struct {
		name string
		body string
		want PIDF
	}{
		{"minimal", `<presence ` + ns + ` entity="pres:a@b"/>`, PIDF{Entity: "pres:a@b"}},
		{"tuple", `<presence ` + ns + ` entity=" pres:a@b "><tuple id=" ID-x "><status><basic> open </basic></status>` +
			`<contact priority="0.3"> sip:a@b;gr=x </contact><note>  hi  </note><timestamp> 2026-01-01T00:00:00Z </timestamp></tuple></presence>`,
			PIDF{Entity: "pres:a@b", Tuples: []Tuple{{ID: "ID-x", Basic: "open", Contact: "sip:a@b;gr=x", Q: 300, HasQ: true,
				Notes: []Note{{Text: "  hi  "}}, Timestamp: "2026-01-01T00:00:00Z"}}}},
		{"show and activities in tuple", `<presence ` + ns + ` xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="e"><tuple id="t">` +
			`<show xmlns="jabber:client">xa</show><r:activities><r:meeting/><r:other>x</r:other></r:activities></tuple></presence>`,
			PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Show: "xa", Activities: []string{"meeting", "other"}}}}},
		{"first of each", `<presence ` + ns + ` entity="e"><tuple id="t"><status><basic>open</basic><basic>closed</basic></status>` +
			`<contact>sip:1@x</contact><contact>sip:2@x</contact></tuple></presence>`,
			PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Basic: "open", Contact: "sip:1@x"}}}},
		{"bad priority ignored", `<presence ` + ns + ` entity="e"><tuple id="t"><contact priority="high">sip:a@b</contact></tuple></presence>`,
			PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Contact: "sip:a@b"}}}},
		{"prefixed priority is not the priority", `<presence ` + ns + ` xmlns:z="urn:z" entity="e"><tuple id="t"><contact z:priority="1" priority="0.25">c</contact></tuple></presence>`,
			PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Contact: "c", Q: 250, HasQ: true}}}},
		{"languages", `<presence ` + ns + ` xml:lang="de" entity="e"><tuple id="t" xml:lang="en-GB"><note>a</note>` +
			`<note xml:lang="">b</note><note xml:lang="not a tag">c</note></tuple><note>d</note></presence>`,
			PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Notes: []Note{{"en-GB", "a"}, {"", "b"}, {"", "c"}}}}, Notes: []Note{{"de", "d"}}}},
		{"entities and CR", `<presence ` + ns + ` entity="e"><note>&lt;&amp;&#xD;&#x1F600;</note></presence>`,
			PIDF{Entity: "e", Notes: []Note{{"", "<&\r\U0001F600"}}}},
		{"wrong-namespace look-alikes", `<presence ` + ns + ` xmlns:o="urn:other" entity="e"><o:tuple id="x"/><o:note>n</o:note>` +
			`<tuple id="t"><status><o:basic>open</o:basic><show>away</show></status></tuple></presence>`,
			PIDF{Entity: "e", Tuples: []Tuple{{ID: "t"}}}},
		{"person notes after document notes", `<presence ` + ns + ` xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="e">` +
			`<dm:person id="p"><dm:note>p1</dm:note></dm:person><note>d1</note></presence>`,
			PIDF{Entity: "e", Notes: []Note{{"", "d1"}, {"", "p1"}}}},
		{"first person with activities", `<presence ` + ns + ` xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="e">` +
			`<dm:person id="p"><r:activities/></dm:person><dm:person id="q"><r:activities><r:away/></r:activities></dm:person>` +
			`<dm:person id="s"><r:activities><r:busy/></r:activities></dm:person></presence>`,
			PIDF{Entity: "e", Activities: []string{"away"}}},
		{"doctype and comments", `<?xml version="1.0"?><!DOCTYPE presence><!-- c --><presence ` + ns + ` entity="e"/><!-- d -->`,
			PIDF{Entity: "e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePIDF([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParsePIDFErrors(t *testing.T) {
	const ns = `xmlns="urn:ietf:params:xml:ns:pidf"`
	deep := `<presence ` + ns + ` entity="e">` + strings.Repeat("<x>", PIDFMaxDepth) + strings.Repeat("</x>", PIDFMaxDepth) + `</presence>`
	notDeep := `<presence ` + ns + ` entity="e">` + strings.Repeat("<x>", PIDFMaxDepth-1) + strings.Repeat("</x>", PIDFMaxDepth-1) + `</presence>`
	var many strings.Builder
	many.WriteString(`<presence ` + ns + ` entity="e">`)
	for i := range PIDFMaxTuples + 1 {
		many.WriteString(`<tuple id="` + TupleID(strings.Repeat("r", i+1)) + `"/>`)
	}
	many.WriteString(`</presence>`)
	big := `<presence ` + ns + ` entity="e"><note>` + strings.Repeat("x", PIDFMaxBytes) + `</note></presence>`
	if _, err := ParsePIDF([]byte(notDeep)); err != nil {
		t.Errorf("depth %d refused: %v", PIDFMaxDepth, err)
	}
	for _, tc := range []struct {
		name string
		body string
		want error
	}{
		{"empty", ``, ErrBadPIDF},
		{"not xml", `presence`, ErrBadPIDF},
		{"unclosed", `<presence ` + ns + ` entity="e">`, ErrBadPIDF},
		{"mismatched", `<presence ` + ns + ` entity="e"></tuple>`, ErrBadPIDF},
		{"no namespace", `<presence entity="e"/>`, ErrBadPIDF},
		{"wrong namespace", `<presence xmlns="urn:ietf:params:xml:ns:cpim-pidf" entity="e"/>`, ErrBadPIDF},
		{"unbound prefix", `<p:presence entity="e"/>`, ErrBadPIDF},
		{"wrong root", `<tuple ` + ns + ` id="t"/>`, ErrBadPIDF},
		{"two roots", `<presence ` + ns + ` entity="e"/><presence ` + ns + ` entity="e"/>`, ErrBadPIDF},
		{"text outside", `x<presence ` + ns + ` entity="e"/>`, ErrBadPIDF},
		{"no entity", `<presence ` + ns + `/>`, ErrBadPIDF},
		{"blank entity", `<presence ` + ns + ` entity="  "/>`, ErrBadPIDF},
		{"prefixed entity only", `<presence ` + ns + ` xmlns:z="urn:z" z:entity="e"/>`, ErrBadPIDF},
		{"tuple without id", `<presence ` + ns + ` entity="e"><tuple/></presence>`, ErrBadPIDF},
		{"duplicate id", `<presence ` + ns + ` entity="e"><tuple id="a"/><tuple id=" a"/></presence>`, ErrBadPIDF},
		{"unknown entity", `<presence ` + ns + ` entity="e"><note>&nbsp;</note></presence>`, ErrBadPIDF},
		{"internal entity", `<!DOCTYPE p [<!ENTITY a "aaaaaaaa">]><presence ` + ns + ` entity="e"><note>&a;&a;</note></presence>`, ErrBadPIDF},
		{"external entity", `<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><presence ` + ns + ` entity="e"><note>&x;</note></presence>`, ErrBadPIDF},
		{"invalid UTF-8", "<presence " + ns + " entity=\"e\"><note>\xff</note></presence>", ErrBadPIDF},
		{"control character", "<presence " + ns + " entity=\"e\"><note>\x01</note></presence>", ErrBadPIDF},
		{"too deep", deep, ErrPIDFTooDeep},
		{"too many tuples", many.String(), ErrPIDFTooBig},
		{"too big", big, ErrPIDFTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePIDF([]byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParsePIDFFixtures(t *testing.T) {
	got, err := ParsePIDF(readPIDF(t, "prefixes.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := PIDF{
		Entity: "sip:romeo@example.net",
		Tuples: []Tuple{
			{ID: "ID-balcony", Basic: "open", Show: "chat", Activities: []string{"busy"},
				Contact: "sip:romeo@example.net;gr=balcony", Q: 500, HasQ: true,
				Notes:     []Note{{"fr", "Sous le balcon"}, {"en", "Under the <balcony>"}},
				Timestamp: "2026-01-02T03:04:05Z"},
			{ID: "t-2", Basic: "open", Contact: "sip:romeo@example.net;gr=cell"},
			{ID: "desk", Basic: "closed", Contact: "sip:romeo@example.net", Q: 1000, HasQ: true},
		},
		Notes:      []Note{{"fr", "Absent"}, {"en", "On holiday"}},
		Activities: []string{"vacation"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("prefixes.xml\n got %+v\nwant %+v", got, want)
	}
	got, err = ParsePIDF(readPIDF(t, "rpid-client.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want = PIDF{
		Entity:     "sip:romeo@example.net",
		Tuples:     []Tuple{{ID: "t8f2c0a1", Basic: "open", Contact: "sip:romeo@192.0.2.4:5060;transport=tcp", Timestamp: "2026-01-02T03:04:05.5+01:00"}},
		Notes:      []Note{{"", "In a call"}},
		Activities: []string{"on-the-phone"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rpid-client.xml\n got %+v\nwant %+v", got, want)
	}
}

func TestPIDFMarshal(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    PIDF
		want string // the part after the XML declaration
	}{
		{"empty", PIDF{Entity: "pres:a@b"},
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b"/>`},
		{"full tuple", PIDF{Entity: " pres:a@b ", Tuples: []Tuple{{ID: "ID-x", Basic: "open", Show: "dnd", Activities: []string{"busy"},
			Contact: "sip:a@b;gr=x", Q: 992, HasQ: true, Notes: []Note{{"en", "a\rb\t\"'<&>"}}, Timestamp: "2026-01-01T00:00:00Z"}}},
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="pres:a@b">` +
				`<tuple id="ID-x"><status><basic>open</basic><show xmlns="jabber:client">dnd</show><rpid:activities><rpid:busy/></rpid:activities></status>` +
				`<contact priority="0.992">sip:a@b;gr=x</contact><note xml:lang="en">a&#xD;b` + "\t" + `"'&lt;&amp;&gt;</note><timestamp>2026-01-01T00:00:00Z</timestamp></tuple></presence>`},
		{"priority without contact", PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", HasQ: true}}},
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="e"><tuple id="t"><status/><contact priority="0"/></tuple></presence>`},
		{"person id avoids tuple ids", PIDF{Entity: "e\n", Tuples: []Tuple{{ID: "person"}, {ID: "person-2"}}, Notes: []Note{{Text: "n"}}, Activities: []string{"away"}},
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="e">` +
				`<tuple id="person"><status/></tuple><tuple id="person-2"><status/></tuple><note>n</note>` +
				`<dm:person id="person-3"><rpid:activities><rpid:away/></rpid:activities></dm:person></presence>`},
		{"attribute escapes", PIDF{Entity: "a\"b<\t", Tuples: []Tuple{{ID: "x'y"}}},
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="a&quot;b&lt;"><tuple id="x'y"><status/></tuple></presence>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			const decl = `<?xml version="1.0" encoding="UTF-8"?>`
			if got, ok := strings.CutPrefix(string(b), decl); !ok || got != tc.want {
				t.Errorf("\n got %s\nwant %s%s", b, decl, tc.want)
			}
			if _, err := ParsePIDF(b); err != nil {
				t.Errorf("own output does not parse: %v", err)
			}
		})
	}
}

func TestPIDFMarshalErrors(t *testing.T) {
	ok := Tuple{ID: "t"}
	tuples := make([]Tuple, PIDFMaxTuples+1)
	for i := range tuples {
		tuples[i].ID = TupleID(strings.Repeat("r", i+1))
	}
	for _, tc := range []struct {
		name string
		d    PIDF
		want error
	}{
		{"no entity", PIDF{Entity: " "}, ErrBadPIDF},
		{"no id", PIDF{Entity: "e", Tuples: []Tuple{{}}}, ErrBadPIDF},
		{"duplicate id", PIDF{Entity: "e", Tuples: []Tuple{ok, {ID: " t "}}}, ErrBadPIDF},
		{"priority", PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Q: 1001, HasQ: true}}}, ErrBadPIDF},
		{"control in note", PIDF{Entity: "e", Notes: []Note{{Text: "\x00"}}}, ErrBadPIDF},
		{"bad UTF-8 in contact", PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Contact: "\xff"}}}, ErrBadPIDF},
		{"control in entity", PIDF{Entity: "e\x1b"}, ErrBadPIDF},
		{"bad note language", PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Notes: []Note{{Lang: "e n", Text: "x"}}}}}, ErrBadPIDF},
		{"bad activity", PIDF{Entity: "e", Activities: []string{"a b"}}, ErrBadPIDF},
		{"note as activity", PIDF{Entity: "e", Tuples: []Tuple{{ID: "t", Activities: []string{"note"}}}}, ErrBadPIDF},
		{"too many tuples", PIDF{Entity: "e", Tuples: tuples}, ErrPIDFTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.d.Marshal(); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPIDFRoundTripFixtures(t *testing.T) {
	for _, name := range []string{"prefixes.xml", "rpid-client.xml", "tv17.xml", "tv17-checklist.xml", "tv19.xml", "tv21b.xml", "offline.xml", "three-resources.xml"} {
		d, err := ParsePIDF(readPIDF(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := d.Marshal()
		if err != nil {
			t.Fatalf("%s: Marshal: %v", name, err)
		}
		back, err := ParsePIDF(b)
		if err != nil {
			t.Fatalf("%s: reparse: %v", name, err)
		}
		if !reflect.DeepEqual(back, d) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, back, d)
		}
	}
}
