package mapping

import (
	"errors"
	"testing"
)

func TestParseSubscriptionState(t *testing.T) {
	type S = SubscriptionState
	for _, tc := range []struct {
		in   string
		want S
	}{
		{"active;expires=3600", S{State: "active", Expires: 3600, HasExpires: true}},
		{"pending;expires=3600", S{State: "pending", Expires: 3600, HasExpires: true}},
		{"terminated;reason=rejected", S{State: "terminated", Reason: "rejected"}},
		{"terminated;reason=probation;retry-after=120", S{State: "terminated", Reason: "probation", RetryAfter: 120, HasRetryAfter: true}},
		{"terminated;reason=timeout;expires=0", S{State: "terminated", Reason: "timeout", HasExpires: true}},
		{"terminated", S{State: "terminated"}},
		{" Active ; EXPIRES = 60 ", S{State: "active", Expires: 60, HasExpires: true}},
		{"terminated;Reason=NoResource", S{State: "terminated", Reason: "noresource"}},
		{"active;expires=3600;max-rate=10;x;y=\"a;b=c\\\"\";z=[2001:db8::1]", S{State: "active", Expires: 3600, HasExpires: true}},
		{"active\t;\texpires=007", S{State: "active", Expires: 7, HasExpires: true}},
		{"active;expires=99999999999999999999999", S{State: "active", Expires: MaxDeltaSeconds, HasExpires: true}},
		{"waiting;reason=x-custom", S{State: "waiting", Reason: "x-custom"}}, // extension-substate and reason
	} {
		got, err := ParseSubscriptionState(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSubscriptionState(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", " ", ";expires=1", "active;", "active;;expires=1", "active expires=1", "active;expires",
		"active;expires=", "active;expires=-1", "active;expires=1h", "active;expires=\"60\"",
		"active;expires=1;expires=2", "terminated;reason", "terminated;reason=\"rejected\"",
		"terminated;reason=a;reason=b", "terminated;retry-after=1;retry-after=1", "active;x=\"open",
		"active;x=\"a\\\r\"", "active\r\nX-Injected: 1", "active;expires=1\n", "act ive", "active;=1",
		"active;x=@", "actïve",
	} {
		if got, err := ParseSubscriptionState(in); !errors.Is(err, ErrBadSubscriptionState) {
			t.Errorf("ParseSubscriptionState(%q) = %+v, %v; want ErrBadSubscriptionState", in, got, err)
		}
	}
}

func TestSubscriptionStateFormat(t *testing.T) {
	type S = SubscriptionState
	for _, tc := range []struct {
		s    S
		want string
	}{
		{S{State: SubStateActive, Expires: 3600, HasExpires: true}, "active;expires=3600"},   // PRES-22b
		{S{State: SubStatePending, Expires: 3599, HasExpires: true}, "pending;expires=3599"}, // PRES-22a
		{S{State: SubStateTerminated, Reason: ReasonRejected}, "terminated;reason=rejected"}, // PRES-24, TV-22
		{S{State: SubStateTerminated, Reason: ReasonTimeout}, "terminated;reason=timeout"},   // PRES-26, TV-23
		{S{State: "Terminated", Reason: "GiveUp", RetryAfter: 30, HasRetryAfter: true}, "terminated;reason=giveup;retry-after=30"},
		{S{State: SubStateActive, Expires: 0, HasExpires: true}, "active;expires=0"},
		{S{State: SubStateActive}, "active"},
	} {
		got, err := tc.s.Format()
		if err != nil || got != tc.want {
			t.Errorf("%+v.Format() = %q, %v; want %q", tc.s, got, err, tc.want)
		}
	}
	for _, s := range []S{
		{}, {State: "active\r\nX: y"}, {State: "active;expires=1"}, {State: "terminated", Reason: "a b"},
		{State: "active", Expires: -1, HasExpires: true}, {State: "active", RetryAfter: MaxDeltaSeconds + 1, HasRetryAfter: true},
	} {
		if got, err := s.Format(); !errors.Is(err, ErrBadSubscriptionState) {
			t.Errorf("%+v.Format() = %q, %v; want ErrBadSubscriptionState", s, got, err)
		}
	}
}

// TestSubscribeFailureAction: every row of the PRES-15 table, refresh and
// initial, and the derived initial rows.
func TestSubscribeFailureAction(t *testing.T) {
	for _, tc := range []struct {
		codes            []int
		refresh, initial SubscriptionAction
	}{
		{[]int{100, 180, 200, 202}, ActionNone, ActionNone},
		// authorization permanently cancelled (TV-24b)
		{[]int{403, 489, 603}, ActionUnsubscribed, ActionUnsubscribed},
		// transient, authorization kept (TV-24c, TV-24a)
		{[]int{423}, ActionRetryMinExpires, ActionRetryMinExpires},
		{[]int{481}, ActionNewDialog, ActionNewDialog},
		// the dialog is gone (MUST, RFC 6665 4.1.2.2)
		{[]int{404, 410, 604}, ActionNewDialog, ActionUnsubscribed},
		{[]int{405, 416, 484, 485, 501}, ActionNewDialog, ActionStop},
		{[]int{480, 482, 483}, ActionNewDialog, ActionRetryLater},
		// other codes: still valid until the old expiry
		{[]int{408, 486, 491, 500, 503, 504, 600}, ActionRetryLater, ActionRetryLater},
		{[]int{301, 302, 400, 401, 407, 415, 420, 488, 606}, ActionRetryLater, ActionStop},
	} {
		for _, code := range tc.codes {
			if got := SubscribeFailureAction(code, true); got != tc.refresh {
				t.Errorf("SubscribeFailureAction(%d, refresh) = %v, want %v", code, got, tc.refresh)
			}
			if got := SubscribeFailureAction(code, false); got != tc.initial {
				t.Errorf("SubscribeFailureAction(%d, initial) = %v, want %v", code, got, tc.initial)
			}
		}
	}
}

// TestSubscriptionStateAction: every reason of PRES-16.
func TestSubscriptionStateAction(t *testing.T) {
	for _, tc := range []struct {
		s    SubscriptionState
		want SubscriptionAction
	}{
		{SubscriptionState{State: SubStateActive, Expires: 60, HasExpires: true}, ActionNone},
		{SubscriptionState{State: SubStatePending, Reason: ReasonRejected}, ActionNone},
		{SubscriptionState{State: "waiting"}, ActionNone},
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonDeactivated}, ActionResubscribeNow},                             // (a)
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonTimeout}, ActionResubscribeNow},                                 // (a)
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonProbation}, ActionRetryLater},                                   // (b)
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonGiveUp}, ActionRetryLater},                                      // (b)
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonRejected}, ActionUnsubscribed},                                  // (c)
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonNoResource}, ActionStop},                                        // (d)
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonInvariant}, ActionStop},                                         // (d)
		{SubscriptionState{State: SubStateTerminated}, ActionRetryLater},                                                            // (e)
		{SubscriptionState{State: SubStateTerminated, Reason: "x-unknown"}, ActionRetryLater},                                       // (e)
		{SubscriptionState{State: "TERMINATED", Reason: "Rejected"}, ActionUnsubscribed},                                            // tokens ignore case
		{SubscriptionState{State: SubStateTerminated, Reason: ReasonRejected, Expires: 3600, HasExpires: true}, ActionUnsubscribed}, // expires ignored
	} {
		if got := tc.s.Action(); got != tc.want {
			t.Errorf("%+v.Action() = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestSubscriptionActionString(t *testing.T) {
	for _, tc := range []struct {
		a    SubscriptionAction
		want string
	}{
		{ActionNone, "none"}, {ActionUnsubscribed, "unsubscribed"}, {ActionRetryMinExpires, "retry-min-expires"},
		{ActionNewDialog, "new-dialog"}, {ActionRetryLater, "retry-later"}, {ActionResubscribeNow, "resubscribe-now"},
		{ActionStop, "stop"}, {SubscriptionAction(42), "action(42)"}, {SubscriptionAction(-1), "action(-1)"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", int(tc.a), got, tc.want)
		}
	}
}
