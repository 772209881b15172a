package msrp

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Fuzz targets assert properties (STYLE.md), not only "no panic".

// fuzzLimits are small, so that the fuzzer reaches the limits.
var fuzzLimits = Limits{MaxHeaderBytes: 512, MaxBodyBytes: 1024, MaxFrameBytes: 1800}

// FuzzParseFrame: (1) feeding the same bytes in random splits gives the
// same frames and errors as feeding them at once; (2) every frame parsed
// re-serialises (Validate passes) to bytes that parse to an equal frame.
func FuzzParseFrame(f *testing.F) {
	for _, dir := range []string{"golden", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.msrp"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err == nil {
				f.Add(b, []byte{3, 17, 40, 99})
			}
		}
	}
	f.Add([]byte("MSRP a SEND\r\nTo-Path: msrp://h/s;tcp\r\nFrom-Path: msrp://h/t;tcp\r\n-------a$\r\n"), []byte{1})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		whole := parseAll(t, fuzzLimits, [][]byte{data})
		pos := make([]int, 0, len(cuts))
		at := 0
		for _, c := range cuts {
			at += int(c) + 1
			pos = append(pos, at)
		}
		if got := parseAll(t, fuzzLimits, split(data, pos)); !sameResults(got, whole) {
			t.Fatalf("split parse differs:\n whole %+v\n split %+v", whole, got)
		}
		for _, r := range whole {
			if r.f == nil {
				continue
			}
			out, err := r.f.Bytes()
			if err != nil {
				t.Fatalf("parsed frame does not serialise: %v\n%#v", err, r.f)
			}
			again := parseAll(t, Limits{MaxHeaderBytes: 4096, MaxBodyBytes: 4096}, [][]byte{out})
			if len(again) != 1 || again[0].f == nil || !reflect.DeepEqual(again[0].f, r.f) {
				t.Fatalf("re-parse differs:\n first %#v\n again %+v\n%q", r.f, again, out)
			}
		}
	})
}

// FuzzURL: what parses formats to a string that parses to the same URL, is
// valid, equals itself, and every error wraps ErrInvalidURL.
func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"msrp://x2s.example.com:8763/lkjh37s2s20w2a;tcp", "msrps://bob.example.net:2855/9fpnwh3d;tcp",
		"MSRP://Host:1/a+b=c/d;TCP;x=y;z", "msrp://[2001:db8::1]:2855/s1;tcp", "msrp://u:p@h/s;tcp",
		"msrp://relay.example.net;tcp", "msrp://h:65535/~_.-;ws",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidURL) {
				t.Fatalf("error %v does not wrap ErrInvalidURL", err)
			}
			return
		}
		v, err := ParseURL(u.String())
		if err != nil || !reflect.DeepEqual(u, v) {
			t.Fatalf("%q -> %q -> %#v, %v", s, u.String(), v, err)
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("Validate(%q): %v", s, err)
		}
		if !u.Equal(v) {
			t.Fatalf("%q not Equal to itself", s)
		}
	})
}
