package mapping

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Fuzz targets for the presence codecs. Properties: nothing panics, every
// error wraps one of the package's sentinels, and whatever parses re-encodes
// to a document (or header) that parses to the same value, and so maps to
// the same presences.

func FuzzParsePIDF(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "pidf", "*.xml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `<presence/>`, `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="e"><tuple id="a"/><tuple id="a"/></presence>`,
		`<presence xmlns="urn:ietf:params:xml:ns:pidf" xml:lang="en" entity="e"><tuple id="ID-x"><status><basic>open</basic></status><note>a</note><note xml:lang="de">b</note></tuple></presence>`,
		`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="e"><note><![CDATA[x]]>y&#xD;</note></presence>`,
	} {
		f.Add([]byte(s))
	}
	a, err := NewAddressing(testConfig)
	if err != nil {
		f.Fatal(err)
	}
	pidfErrors := []error{ErrBadPIDF, ErrPIDFTooBig, ErrPIDFTooDeep}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := ParsePIDF(body)
		if err != nil {
			for _, s := range pidfErrors {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no PIDF sentinel", err)
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("parsed %+v but Marshal refuses it: %v", d, err)
		}
		if len(out) > PIDFMaxBytes {
			return // escaping can grow a document past the parse limit
		}
		back, err := ParsePIDF(out)
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, d) {
			t.Fatalf("round trip\n got %+v\nwant %+v\n%s", back, d, out)
		}
		again, err := back.Marshal()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Marshal is not stable: %v\n%s\n%s", err, out, again)
		}
		ps1, err1 := a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", body, "en")
		ps2, err2 := a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", out, "en")
		if err1 != nil || err2 != nil || !reflect.DeepEqual(ps1, ps2) {
			t.Fatalf("presences differ: %v %v\n%+v\n%+v", err1, err2, ps1, ps2)
		}
		for _, p := range ps1 {
			if _, err := checkPresence(p); err != nil {
				t.Fatalf("mapped an invalid presence %+v: %v", p, err)
			}
		}
	})
}

func FuzzSubscriptionState(f *testing.F) {
	for _, s := range []string{
		"active;expires=3600", "pending;expires=3600", "terminated;reason=rejected", "terminated;reason=probation;retry-after=30",
		" Active ; EXPIRES = 60 ", `active;x="a;b\"";y=[::1]`, "active;expires=99999999999999999999", "terminated;reason",
		"active\r\nX: y", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseSubscriptionState(v)
		if err != nil {
			if !errors.Is(err, ErrBadSubscriptionState) {
				t.Fatalf("error %v does not wrap ErrBadSubscriptionState", err)
			}
			return
		}
		out, err := s.Format()
		if err != nil {
			t.Fatalf("parsed %+v but Format refuses it: %v", s, err)
		}
		back, err := ParseSubscriptionState(out)
		if err != nil || back != s {
			t.Fatalf("round trip of %q: %q -> %+v, %v; want %+v", v, out, back, err, s)
		}
		if again, _ := back.Format(); again != out {
			t.Fatalf("Format is not stable: %q, %q", out, again)
		}
		_ = s.Action() // total: any state has an action
	})
}
