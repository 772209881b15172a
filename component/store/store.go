// Package store is stox's embedded persistence (store.path): one file
// holding what must survive a restart — presence subscriptions and their SIP
// dialogs. Records are JSON values in named buckets, keyed by strings the
// caller chooses; the store knows nothing of XMPP or SIP.
//
// The file is an append-only journal, one change per line:
//
//	{"b":"presence-in","k":"alice@example.com sip:bob@example.net","v":{...}}
//	{"b":"presence-in","k":"alice@example.com sip:bob@example.net","d":true}
//
// Open replays it; Apply appends a batch of changes with one write and one
// fsync; Compact rewrites the file with exactly the records the caller
// holds (a new file, synced, renamed over the old one). The store keeps no
// copy of the records once the caller has read them (Release): a gateway
// holding 100,000 subscriptions in memory does not hold them twice, and
// nothing of the file is mapped into memory (a B+tree file mapped with
// mmap, as bbolt does, stays resident once written: about 100 MB for
// 100,000 subscriptions).
//
// A torn last line (a crash during a write) is ignored at replay; a
// malformed line elsewhere is an error. One process at a time: Open takes
// an exclusive lock on the file (flock).
package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Errors.
var (
	// ErrNotFound is returned by Get for a missing key.
	ErrNotFound = errors.New("store: not found")
	// ErrReleased: the replayed records were released (Release); Get and
	// ForEach only serve what Open read.
	ErrReleased = errors.New("store: replayed records released")
	// ErrLocked: another process has the store open.
	ErrLocked = errors.New("store: in use by another process")
)

// maxLine bounds one journal line (one record).
const maxLine = 16 << 20

// Store is an open store file. It is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	size     int64
	released bool
	// live is the state replayed by Open, kept current by Apply until
	// Release.
	live map[string]map[string]json.RawMessage
}

// Op is one change of a batch: Value (encoded as JSON) is stored under
// Bucket/Key, or the key is deleted when Value is nil.
type Op struct {
	Bucket, Key string
	Value       any
}

// line is one journal line.
type line struct {
	B string          `json:"b"`
	K string          `json:"k"`
	V json.RawMessage `json:"v,omitempty"`
	D bool            `json:"d,omitempty"`
}

// Open opens (creating if needed) the store file at path and replays it.
// A second process opening the same file waits up to timeout, then fails
// with ErrLocked: two gateways must not share one store.
func Open(path string, timeout time.Duration) (*Store, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := lockFile(f)
		if err == nil {
			break
		}
		if !errors.Is(err, errWouldBlock) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, errWouldBlock) {
				return nil, fmt.Errorf("%w: %s", ErrLocked, path)
			}
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := &Store{path: path, f: f, live: make(map[string]map[string]json.RawMessage)}
	if err := s.replay(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// replay reads the journal into s.live and positions the file for appends.
// A torn last line is cut off.
func (s *Store) replay() error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	r := bufio.NewReaderSize(s.f, 64<<10)
	var good int64
	for n := 1; ; n++ {
		b, err := r.ReadBytes('\n')
		if len(b) > maxLine {
			return fmt.Errorf("store: %s: line %d is longer than %d bytes", s.path, n, maxLine)
		}
		if err == io.EOF {
			if len(b) > 0 {
				// A torn last line: a write that did not finish.
				if terr := s.f.Truncate(good); terr != nil {
					return fmt.Errorf("store: %s: cutting a torn last line: %w", s.path, terr)
				}
			}
			break
		}
		if err != nil {
			return fmt.Errorf("store: %s: line %d: %w", s.path, n, err)
		}
		var l line
		if err := json.Unmarshal(b, &l); err != nil || l.B == "" {
			return fmt.Errorf("store: %s: line %d is not a record", s.path, n)
		}
		s.apply(l)
		good += int64(len(b))
	}
	s.size = good
	if _, err := s.f.Seek(good, io.SeekStart); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func (s *Store) apply(l line) {
	bk := s.live[l.B]
	if l.D {
		delete(bk, l.K)
		return
	}
	if bk == nil {
		bk = make(map[string]json.RawMessage)
		s.live[l.B] = bk
	}
	bk[l.K] = append(json.RawMessage(nil), l.V...)
}

// Close closes the file (and releases the lock).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Put stores v (as JSON) under bucket/key, replacing what was there.
func (s *Store) Put(bucket, key string, v any) error {
	return s.Apply([]Op{{Bucket: bucket, Key: key, Value: v}})
}

// Delete removes bucket/key; a missing key is not an error.
func (s *Store) Delete(bucket, key string) error {
	return s.Apply([]Op{{Bucket: bucket, Key: key}})
}

// encode writes ops as journal lines to w; with keep it also returns the
// lines (to update the replayed state).
func encode(w io.Writer, ops []Op, keep bool) ([]line, error) {
	var lines []line
	if keep {
		lines = make([]line, 0, len(ops))
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, op := range ops {
		if op.Bucket == "" {
			return nil, fmt.Errorf("store: empty bucket name")
		}
		l := line{B: op.Bucket, K: op.Key, D: op.Value == nil}
		if op.Value != nil {
			v, err := json.Marshal(op.Value)
			if err != nil {
				return nil, fmt.Errorf("store: encode %s/%s: %w", op.Bucket, op.Key, err)
			}
			l.V = v
		}
		if err := enc.Encode(l); err != nil { // one line, '\n' included
			return nil, fmt.Errorf("store: write %s/%s: %w", op.Bucket, op.Key, err)
		}
		if keep {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// Apply makes every change of ops with one write and one fsync. If the
// write fails, the file is cut back to where it was: all or none.
func (s *Store) Apply(ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("store: closed")
	}
	var buf bytes.Buffer
	lines, err := encode(&buf, ops, !s.released)
	if err != nil {
		return err
	}
	b := buf.Bytes()
	if _, err := s.f.Write(b); err != nil {
		_ = s.f.Truncate(s.size)
		_, _ = s.f.Seek(s.size, io.SeekStart)
		return fmt.Errorf("store: write %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", s.path, err)
	}
	s.size += int64(len(b))
	if !s.released {
		for _, l := range lines {
			s.apply(l)
		}
	}
	return nil
}

// Size is the journal's length in bytes, for deciding when to Compact.
func (s *Store) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Compact replaces the whole file with the records (values, no deletes)
// that records yields, streamed to a new file, synced, and renamed over the
// journal, so a crash leaves the old journal or the new one, never a mix.
func (s *Store) Compact(records iter.Seq[Op]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("store: closed")
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".compact-*")
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("store: compact: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	// Streamed to the file: 100,000 records are not held twice.
	cw := &countingWriter{w: bufio.NewWriterSize(tmp, 256<<10)}
	var lines []line
	for op := range records {
		if op.Value == nil {
			return fail(fmt.Errorf("delete of %s/%s", op.Bucket, op.Key))
		}
		ls, err := encode(cw, []Op{op}, !s.released)
		if err != nil {
			return fail(err)
		}
		lines = append(lines, ls...)
	}
	if err := cw.w.(*bufio.Writer).Flush(); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	// The lock moves with the new file: lock it before it takes the name.
	if err := lockFile(tmp); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fail(err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	s.f.Close()
	s.f = tmp
	s.size = cw.n
	if !s.released {
		s.live = make(map[string]map[string]json.RawMessage)
		for _, l := range lines {
			s.apply(l)
		}
	}
	return nil
}

// Release forgets the records replayed at Open: the caller has read them
// (ForEach) and holds them itself. Get and ForEach then fail with
// ErrReleased; Apply and Compact go on.
func (s *Store) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = true
	s.live = nil
}

// Get decodes bucket/key into v; ErrNotFound if absent.
func (s *Store) Get(bucket, key string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return ErrReleased
	}
	b, ok := s.live[bucket][key]
	if !ok {
		return ErrNotFound
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("store: decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// ForEach calls fn for every record of a bucket in key order, with the raw
// JSON; fn decodes what it needs. An error from fn stops the walk.
func (s *Store) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return ErrReleased
	}
	bk := s.live[bucket]
	keys := make([]string, 0, len(bk))
	for k := range bk {
		keys = append(keys, k)
	}
	vals := make([]json.RawMessage, 0, len(bk))
	sort.Strings(keys)
	for _, k := range keys {
		vals = append(vals, bk[k])
	}
	s.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// countingWriter counts what goes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
