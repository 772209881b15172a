package mapping

import "testing"

// Benchmarks of the presence paths: one PIDF build per XMPP presence change
// and watcher fan-out batch, one parse per NOTIFY.

func BenchmarkPresenceToPIDF(b *testing.B) {
	a := benchAddressing(b)
	var s PresenceState
	for _, p := range []Presence{
		{From: "juliet@example.com/balcony", Show: ShowDND, Status: "Parting is such sweet sorrow", Lang: "en", Priority: 10, HasPriority: true},
		{From: "juliet@example.com/chamber", Status: "Ay me!", Lang: "en", Priority: 5, HasPriority: true},
		{From: "juliet@example.com/yn0cl4bnw0yr3vym", Show: ShowAway, Priority: 1, HasPriority: true},
	} {
		if _, err := s.Apply(p); err != nil {
			b.Fatal(err)
		}
	}
	ps := s.Available()
	for _, bc := range []struct {
		name string
		opt  PIDFOptions
	}{
		{"3res", PIDFOptions{}},
		{"3res+rpid+ts", PIDFOptions{RPID: true, Timestamp: "2026-01-02T03:04:05.123456789Z"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := a.PresenceToPIDF("juliet@example.com", ps, bc.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParsePIDF(b *testing.B) {
	for _, name := range []string{"tv17.xml", "three-resources.xml", "prefixes.xml"} {
		body := readPIDF(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ParsePIDF(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPresenceFromPIDF(b *testing.B) {
	a := benchAddressing(b)
	body := readPIDF(b, "three-resources.xml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.PresenceFromPIDF("sip:romeo@example.net", "juliet@example.com", body, "en"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSubscriptionState(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSubscriptionState("terminated;reason=probation;retry-after=120"); err != nil {
			b.Fatal(err)
		}
	}
}
