// Package store is stox's embedded persistence (store.path): one bbolt file
// holding what must survive a restart — presence subscriptions and their SIP
// dialogs. Records are JSON values in named buckets, keyed by strings the
// caller chooses; the store knows nothing of XMPP or SIP.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("store: not found")

// Store is an open store file. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the store file at path. A second process
// opening the same file waits up to timeout, then fails: two gateways must
// not share one store.
func Open(path string, timeout time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Put stores v (as JSON) under bucket/key, replacing what was there.
func (s *Store) Put(bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s/%s: %w", bucket, key, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), b)
	})
}

// Get decodes bucket/key into v; ErrNotFound if absent.
func (s *Store) Get(bucket, key string, v any) error {
	return s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return ErrNotFound
		}
		b := bk.Get([]byte(key))
		if b == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("store: decode %s/%s: %w", bucket, key, err)
		}
		return nil
	})
}

// Delete removes bucket/key; a missing key is not an error.
func (s *Store) Delete(bucket, key string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		return bk.Delete([]byte(key))
	})
}

// ForEach calls fn for every record of a bucket in key order, with the raw
// JSON; fn decodes what it needs. An error from fn stops the walk.
func (s *Store) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}

// Op is one change of a batch: Value (encoded as JSON) is stored under
// Bucket/Key, or the key is deleted when Value is nil.
type Op struct {
	Bucket, Key string
	Value       any
}

// Apply makes every change of ops in one transaction (one disk sync): all
// of them or, on error, none.
func (s *Store) Apply(ops []Op) error {
	enc := make([][]byte, len(ops))
	for i, op := range ops {
		if op.Value == nil {
			continue
		}
		b, err := json.Marshal(op.Value)
		if err != nil {
			return fmt.Errorf("store: encode %s/%s: %w", op.Bucket, op.Key, err)
		}
		enc[i] = b
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for i, op := range ops {
			bk, err := tx.CreateBucketIfNotExists([]byte(op.Bucket))
			if err != nil {
				return err
			}
			if enc[i] == nil {
				err = bk.Delete([]byte(op.Key))
			} else {
				err = bk.Put([]byte(op.Key), enc[i])
			}
			if err != nil {
				return fmt.Errorf("store: %s/%s: %w", op.Bucket, op.Key, err)
			}
		}
		return nil
	})
}
