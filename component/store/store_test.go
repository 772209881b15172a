package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type rec struct {
	Watcher string
	Expires int
}

func TestPutGetDeleteForEach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stox.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Get("subs", "a", &rec{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	for _, k := range []string{"b", "a", "c"} {
		if err := s.Put("subs", k, rec{Watcher: k, Expires: 3600}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("subs", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("nothing", "x"); err != nil {
		t.Fatal(err)
	}
	// Survives a close and reopen (a restart).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	err = s.ForEach("subs", func(k string, raw []byte) error {
		var r rec
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		if r.Watcher != k || r.Expires != 3600 {
			t.Errorf("%s: %+v", k, r)
		}
		got = append(got, k)
		return nil
	})
	if err != nil || len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("ForEach: %v %v", got, err)
	}
	var r rec
	if err := s.Get("subs", "b", &r); err != nil || r.Watcher != "b" {
		t.Fatalf("Get: %+v %v", r, err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stox.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path, 50*time.Millisecond); err == nil {
		t.Fatal("a second open of a store in use succeeded")
	}
}

// TestTornLineAndCompact: a torn last line (a crash mid-write) is cut off
// at replay; Compact leaves exactly the given records; Release drops the
// replayed copy.
func TestTornLineAndCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stox.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := s.Apply([]Op{{Bucket: "subs", Key: "k", Value: rec{Watcher: "w", Expires: i}}}); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Size()
	if err := s.Compact(slices.Values([]Op{{Bucket: "subs", Key: "k", Value: rec{Watcher: "w", Expires: 49}}, {Bucket: "other", Key: "x", Value: rec{Watcher: "x"}}})); err != nil {
		t.Fatal(err)
	}
	if s.Size() >= before {
		t.Errorf("compact: %d bytes, before %d", s.Size(), before)
	}
	if err := s.Put("subs", "j", rec{Watcher: "j"}); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if err := s.Get("subs", "k", &rec{}); !errors.Is(err, ErrReleased) {
		t.Errorf("Get after Release: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"b":"subs","k":"torn","v":{"Wat`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatalf("reopen after a torn line: %v", err)
	}
	defer s.Close()
	var r rec
	if err := s.Get("subs", "k", &r); err != nil || r.Expires != 49 {
		t.Errorf("k: %+v %v", r, err)
	}
	if err := s.Get("subs", "j", &r); err != nil || r.Watcher != "j" {
		t.Errorf("j (written after the compaction): %+v %v", r, err)
	}
	if err := s.Get("subs", "torn", &r); !errors.Is(err, ErrNotFound) {
		t.Errorf("torn record: %v", err)
	}
	if err := s.Put("subs", "after", rec{Watcher: "a"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(b), "\n") || strings.Contains(string(b), "torn") {
		t.Errorf("journal after the repair:\n%s", b)
	}
}

// TestMalformedLine: a malformed line before the end is an error, not
// silently skipped.
func TestMalformedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stox.db")
	if err := os.WriteFile(path, []byte("garbage\n{\"b\":\"subs\",\"k\":\"a\",\"v\":{}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, time.Second); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Open = %v", err)
	}
}
