package mapping

import (
	"errors"
	"strings"
	"testing"
)

// The two documents of RFC 3994 (idle with lastactive, active with
// refresh), written out from the RFC. Its xsi:schemaLocation names
// "urn:ietf:params:xml:ns:im-composing", which is not the namespace; it is
// an attribute nobody dereferences, kept to show it does not matter.
const (
	rfc3994Idle = `<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing
  iscomposing.xsd">
  <state>idle</state>
  <lastactive>2003-01-27T10:43:00Z</lastactive>
  <contenttype>audio</contenttype>
</isComposing>`
	rfc3994Active = `<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">
  <state>active</state>
  <contenttype>text/plain</contenttype>
  <refresh>90</refresh>
</isComposing>`
)

func TestParseIsComposing(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want IsComposing
		err  error
	}{
		{"RFC 3994 idle", rfc3994Idle, IsComposing{State: "idle", LastActive: "2003-01-27T10:43:00Z", ContentType: "audio"}, nil},
		{"RFC 3994 active", rfc3994Active, IsComposing{State: "active", ContentType: "text/plain", Refresh: 90}, nil},
		{"prefixed", `<ic:isComposing xmlns:ic="urn:ietf:params:xml:ns:im-iscomposing"><ic:state>active</ic:state></ic:isComposing>`, IsComposing{State: "active"}, nil},
		{"unknown state is idle (CHAT-51)", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>typing</state></isComposing>`, IsComposing{State: "idle"}, nil},
		{"state trimmed", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state> active
</state></isComposing>`, IsComposing{State: "active"}, nil},
		{"extension and foreign state ignored", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing" xmlns:x="urn:x"><x:state>idle</x:state><state>active</state><x:ext><x:deep/></x:ext></isComposing>`, IsComposing{State: "active"}, nil},
		{"bad refresh ignored", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><refresh>-5</refresh></isComposing>`, IsComposing{State: "active"}, nil},
		{"huge refresh ignored", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><refresh>99999999999999999999</refresh></isComposing>`, IsComposing{State: "active"}, nil},
		{"bad lastactive ignored", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state><lastactive>yesterday</lastactive></isComposing>`, IsComposing{State: "idle"}, nil},
		{"first state wins", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state><state>active</state></isComposing>`, IsComposing{State: "idle"}, nil},

		{"no state", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"/>`, IsComposing{}, ErrBadIsComposing},
		{"wrong namespace", `<isComposing xmlns="urn:ietf:params:xml:ns:im-composing"><state>active</state></isComposing>`, IsComposing{}, ErrBadIsComposing},
		{"no namespace", `<isComposing><state>active</state></isComposing>`, IsComposing{}, ErrBadIsComposing},
		{"wrong root", `<composing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></composing>`, IsComposing{}, ErrBadIsComposing},
		{"not XML", `active`, IsComposing{}, ErrBadIsComposing},
		{"empty", ``, IsComposing{}, ErrBadIsComposing},
		{"unclosed", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>`, IsComposing{}, ErrBadIsComposing},
		{"two roots", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing><x/>`, IsComposing{}, ErrBadIsComposing},
		{"too deep", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `</isComposing>`, IsComposing{}, ErrBadIsComposing},
		{"too big", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><!--` + strings.Repeat("x", IsComposingMaxBytes) + `--></isComposing>`, IsComposing{}, ErrBadIsComposing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseIsComposing([]byte(c.in))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestIsComposingMarshal(t *testing.T) {
	cases := []struct {
		in   IsComposing
		want string
		err  error
	}{
		{IsComposing{State: "active", ContentType: "text/plain", Refresh: 90},
			`<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype><refresh>90</refresh></isComposing>`, nil},
		{IsComposing{State: "idle", LastActive: "2003-01-27T10:43:00Z"},
			`<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state><lastactive>2003-01-27T10:43:00Z</lastactive></isComposing>`, nil},
		{IsComposing{State: "idle", ContentType: "a<b&c"},
			`<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state><contenttype>a&lt;b&amp;c</contenttype></isComposing>`, nil},
		{IsComposing{State: "composing"}, "", ErrBadIsComposing},
		{IsComposing{}, "", ErrBadIsComposing},
		{IsComposing{State: "idle", LastActive: "now"}, "", ErrBadIsComposing},
		{IsComposing{State: "active", Refresh: -1}, "", ErrBadIsComposing},
		{IsComposing{State: "active", ContentType: "a\x00"}, "", ErrBadIsComposing},
		{IsComposing{State: "active", ContentType: " text/plain"}, "", ErrBadIsComposing},
	}
	for _, c := range cases {
		got, err := c.in.Marshal()
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%+v: err = %v, want %v", c.in, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%+v: got %s, %v\nwant %s", c.in, got, err, c.want)
			continue
		}
		back, err := ParseIsComposing(got)
		if err != nil || back != c.in {
			t.Errorf("round trip %+v -> %+v, %v", c.in, back, err)
		}
	}
}

func TestIsComposingTimeout(t *testing.T) {
	cases := []struct {
		c    IsComposing
		want int
	}{
		{IsComposing{State: "active", Refresh: 90}, 90},
		{IsComposing{State: "active"}, IsComposingDefaultTimeout},
		{IsComposing{State: "idle", Refresh: 90}, 0},
	}
	for _, c := range cases {
		if got := c.c.Timeout(); got != c.want {
			t.Errorf("%+v.Timeout() = %d, want %d", c.c, got, c.want)
		}
	}
}

// TestChatStateMapping: RFC 7573 6 Tables 3 and 4 (CHAT-50, CHAT-52,
// CHAT-60).
func TestChatStateMapping(t *testing.T) {
	from := []struct {
		c    IsComposing
		want string
	}{
		{IsComposing{State: "active"}, ChatStateComposing},
		{IsComposing{State: "idle"}, ChatStateActive},
		{IsComposing{State: "other"}, ChatStateActive},
	}
	for _, c := range from {
		if got := ChatStateFromIsComposing(c.c); got != c.want {
			t.Errorf("ChatStateFromIsComposing(%+v) = %q, want %q", c.c, got, c.want)
		}
	}
	const last = "2003-01-27T10:43:00Z"
	to := []struct {
		state   string
		refresh int
		want    IsComposing
		ok      bool
	}{
		{ChatStateComposing, 0, IsComposing{State: "active", ContentType: "text/plain", Refresh: IsComposingMinRefresh}, true},
		{ChatStateComposing, 30, IsComposing{State: "active", ContentType: "text/plain", Refresh: IsComposingMinRefresh}, true},
		{ChatStateComposing, 90, IsComposing{State: "active", ContentType: "text/plain", Refresh: 90}, true},
		{ChatStateActive, 90, IsComposing{State: "idle", LastActive: last, ContentType: "text/plain"}, true},
		{ChatStatePaused, 0, IsComposing{State: "idle", LastActive: last, ContentType: "text/plain"}, true},
		{ChatStateInactive, 0, IsComposing{State: "idle", LastActive: last, ContentType: "text/plain"}, true},
		{ChatStateGone, 0, IsComposing{}, false},
		{"Composing", 0, IsComposing{}, false},
		{"", 0, IsComposing{}, false},
	}
	for _, c := range to {
		got, ok := IsComposingFromChatState(c.state, last, "text/plain", c.refresh)
		if got != c.want || ok != c.ok {
			t.Errorf("IsComposingFromChatState(%q, %d) = %+v, %v; want %+v, %v", c.state, c.refresh, got, ok, c.want, c.ok)
			continue
		}
		if ok {
			if _, err := got.Marshal(); err != nil {
				t.Errorf("%q: Marshal: %v", c.state, err)
			}
			// The round trip through SIP lands on the XEP-0085 state that
			// carries the same meaning: composing stays composing, the
			// three quiet states become active.
			want := ChatStateActive
			if c.state == ChatStateComposing {
				want = ChatStateComposing
			}
			if back := ChatStateFromIsComposing(got); back != want {
				t.Errorf("%q -> %+v -> %q", c.state, got, back)
			}
		}
	}
}

// FuzzIsComposing: whatever ParseIsComposing accepts marshals, and parses
// back to the same value; errors wrap ErrBadIsComposing.
func FuzzIsComposing(f *testing.F) {
	f.Add([]byte(rfc3994Idle))
	f.Add([]byte(rfc3994Active))
	f.Add([]byte(`<ic:isComposing xmlns:ic="urn:ietf:params:xml:ns:im-iscomposing"><ic:state>x</ic:state><ic:contenttype> a&#13;b </ic:contenttype></ic:isComposing>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseIsComposing(in)
		if err != nil {
			if !errors.Is(err, ErrBadIsComposing) {
				t.Fatalf("error %v does not wrap ErrBadIsComposing", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", c, err)
		}
		back, err := ParseIsComposing(out)
		if err != nil || back != c {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", c, out, back, err)
		}
	})
}

func BenchmarkParseIsComposing(b *testing.B) {
	in := []byte(rfc3994Active)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseIsComposing(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIsComposingMarshal(b *testing.B) {
	c := IsComposing{State: ComposingActive, ContentType: "text/plain", Refresh: 90}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
