package mapping

import "testing"

func TestEncodeSIPUser(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"m&m", "m&m"},               // TV-11a: user-unreserved stays
		{"tschüss", "tsch%C3%BCss"},  // TV-11b
		{"d'artagnan", "d'artagnan"}, // mark stays (RFC 3261 19.1.4: same URI as %27)
		{"john doe", "john%20doe"},
		{"a@b", "a%40b"},
		{"a:b", "a%3Ab"},
		{`#%[\]^` + "`{|}", "%23%25%5B%5C%5D%5E%60%7B%7C%7D"}, // ADDR-07 step 5
		{`"<>`, "%22%3C%3E"}, // ADDR-08
		{"-_.!~*'()&=+$,;?/", "-_.!~*'()&=+$,;?/"},
		{"\x00\x7f", "%00%7F"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := EncodeSIPUser(tt.in); got != tt.want {
			t.Errorf("EncodeSIPUser(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEncodeSIPParam(t *testing.T) {
	tests := []struct{ in, want string }{
		{"yn0cl4bnw0yr3vym", "yn0cl4bnw0yr3vym"},
		{"urn:uuid:1-2", "urn:uuid:1-2"},
		{"[a]/b:c&d+e$", "[a]/b:c&d+e$"},
		{"a b;c=d?e@f", "a%20b%3Bc%3Dd%3Fe%40f"},
		{"é", "%C3%A9"},
	}
	for _, tt := range tests {
		if got := EncodeSIPParam(tt.in); got != tt.want {
			t.Errorf("EncodeSIPParam(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecodeSIPUser(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"alice", "alice", nil},
		{"f%C3%BC", "fü", nil}, // TV-10a
		{"d%27artagnan", "d'artagnan", nil},
		{"%7e%7E", "~~", nil}, // either case
		{"a%40b", "a@b", nil},
		{"*21#", "*21#", nil}, // lenient on raw characters phones send
		{"%FF", "\xff", nil},  // bytes; UTF-8 is checked by the address functions
		{"%", "", ErrMalformedURI},
		{"%4", "", ErrMalformedURI},
		{"%GG", "", ErrMalformedURI},
		{"a b", "", ErrMalformedURI},
		{"a@b", "", ErrMalformedURI},
		{"a\nb", "", ErrMalformedURI},
	}
	for _, tt := range tests {
		got, err := DecodeSIPUser(tt.in)
		if checkErr(t, "DecodeSIPUser("+tt.in+")", err, tt.err) && got != tt.want {
			t.Errorf("DecodeSIPUser(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecodeSIPParam(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"phone", "phone", nil},
		{"a%20b", "a b", nil},
		{"%2", "", ErrMalformedURI},
		{"a\x00", "", ErrMalformedURI},
	}
	for _, tt := range tests {
		got, err := DecodeSIPParam(tt.in)
		if checkErr(t, "DecodeSIPParam("+tt.in+")", err, tt.err) && got != tt.want {
			t.Errorf("DecodeSIPParam(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
