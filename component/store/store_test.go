package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
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
