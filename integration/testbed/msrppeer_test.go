package testbed

import "testing"

// The hash values of a CI run where Kamailio's relay answered 200 to a
// SEND for "no-such-session": it shares slot 90 with the session
// msrp-6b16191a-39fd-1, whose hash is greater (see UnknownMSRPSession).
func TestKamailioCaseHash(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want uint32
	}{
		{"no-such-session", 1559130458},
		{"msrp-6b16191a-39fd-1", 2452421466},
		{"msrp-6b16191a-39fc-1", 2452855907},
		{"MSRP-6B16191A-39FC-1", 2452855907}, // case-insensitive
		{"", 0},
	} {
		if got := kamailioCaseHash(tc.s); got != tc.want {
			t.Errorf("kamailioCaseHash(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
	known := []string{"msrp-6b16191a-39fd-1", "msrp-6b16191a-39fc-1"}
	s := UnknownMSRPSession(known...)
	for _, k := range known {
		if kamailioCaseHash(s)%kamailioCmapSlots == kamailioCaseHash(k)%kamailioCmapSlots {
			t.Errorf("UnknownMSRPSession(%q) = %q, in the slot of %q", known, s, k)
		}
	}
	if got := MSRPSessionOf("msrp://127.0.0.1:12093/msrp-6b16191a-39fd-1;tcp"); got != "msrp-6b16191a-39fd-1" {
		t.Errorf("MSRPSessionOf = %q", got)
	}
}
