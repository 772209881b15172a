package mapping

import (
	"reflect"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in   string
		want URI
		err  error
	}{
		{"sip:romeo@example.net", URI{Scheme: "sip", User: "romeo", Host: "example.net"}, nil},
		{"SIP:Romeo@Example.NET:5070;Transport=TCP;gr=yn0;lr?Subject=hi",
			URI{Scheme: "sip", User: "Romeo", Host: "example.net", Port: 5070,
				Params:  []Param{{"transport", "TCP"}, {"gr", "yn0"}, {"lr", ""}},
				Headers: "Subject=hi"}, nil},
		{"sips:juliet@example.com", URI{Scheme: "sips", User: "juliet", Host: "example.com"}, nil},
		{"sip:f%C3%BC@sip.example", URI{Scheme: "sip", User: "fü", Host: "sip.example"}, nil},
		{"sip:example.com", URI{Scheme: "sip", Host: "example.com"}, nil},
		{"sip:127.0.0.1:5070;transport=udp", URI{Scheme: "sip", Host: "127.0.0.1", Port: 5070, Params: []Param{{"transport", "udp"}}}, nil},
		{"sip:bob@[2001:DB8::1]:5060", URI{Scheme: "sip", User: "bob", Host: "[2001:db8::1]", Port: 5060}, nil},
		{"sip:a?b;c=d@host;x=y?h=v", URI{Scheme: "sip", User: "a?b;c=d", Host: "host", Params: []Param{{"x", "y"}}, Headers: "h=v"}, nil},
		{"sip:?@0", URI{Scheme: "sip", User: "?", Host: "0"}, nil}, // fuzz: '?' in the user part
		{"sip:bob@host;gr=a%20b", URI{Scheme: "sip", User: "bob", Host: "host", Params: []Param{{"gr", "a b"}}}, nil},
		{"im:romeo@example.net", URI{Scheme: "im", User: "romeo", Host: "example.net"}, nil},
		{"pres:romeo@example.net", URI{Scheme: "pres", User: "romeo", Host: "example.net"}, nil},
		{"tel:+1-201-555-0123;phone-context=example.com", URI{Scheme: "tel", User: "+1-201-555-0123", Params: []Param{{"phone-context", "example.com"}}}, nil},

		{"", URI{}, ErrMalformedURI},
		{"romeo@example.net", URI{}, ErrMalformedURI},
		{"http://example.net", URI{}, ErrUnsupportedScheme},
		{"sip://romeo@example.net", URI{}, ErrMalformedURI},
		{"sip:@example.net", URI{}, ErrMalformedURI},
		{"sip:romeo:pw@example.net", URI{}, ErrMalformedURI},
		{"sip:romeo@", URI{}, ErrMalformedURI},
		{"sip:romeo@exa mple.net", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net:", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net:0", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net:65536", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net:+5", URI{}, ErrMalformedURI},
		{"sip:romeo@[::1", URI{}, ErrMalformedURI},
		{"sip:romeo@[::1]x", URI{}, ErrMalformedURI},
		{"sip:romeo@[zz]", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net;", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net;=x", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net;a=%zz", URI{}, ErrMalformedURI},
		{"sip:ro%4@example.net", URI{}, ErrMalformedURI},
		{"sip:romeo@example.net?a b", URI{}, ErrMalformedURI},
		{"tel:", URI{}, ErrMalformedURI},
		{"tel:abc xyz", URI{}, ErrMalformedURI},
	}
	for _, tt := range tests {
		got, err := ParseURI(tt.in)
		if checkErr(t, "ParseURI("+tt.in+")", err, tt.err) && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURI(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestURIString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sip:romeo@example.net", "sip:romeo@example.net"},
		{"SIP:Romeo@Example.NET:5070;Transport=TCP;lr?Subject=hi", "sip:Romeo@example.net:5070;transport=TCP;lr?Subject=hi"},
		{"sip:d%27artagnan@example.net", "sip:d'artagnan@example.net"}, // normal form (RFC 3261 19.1.4)
		{"sip:%7e@example.net", "sip:~@example.net"},
		{"sip:a%40b@c.org;gr=x%20y", "sip:a%40b@c.org;gr=x%20y"},
		{"sip:bob@[2001:db8::1]", "sip:bob@[2001:db8::1]"},
		{"sip:a?b;c@host", "sip:a?b;c@host"},
		{"sip:example.com;gr=", "sip:example.com;gr"},
		{"tel:+1-201-555-0123;phone-context=example.com", "tel:+1-201-555-0123;phone-context=example.com"},
	}
	for _, tt := range tests {
		u, err := ParseURI(tt.in)
		if err != nil {
			t.Fatalf("ParseURI(%q): %v", tt.in, err)
		}
		if got := u.String(); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURIParam(t *testing.T) {
	u, err := ParseURI("sip:a@b;GR=x;lr;transport=tcp")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"gr", "x", true},
		{"Gr", "x", true},
		{"lr", "", true},
		{"transport", "tcp", true},
		{"maddr", "", false},
	}
	for _, tt := range tests {
		got, ok := u.Param(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Param(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
