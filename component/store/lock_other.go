//go:build !unix

package store

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("store: lock held")

// lockFile does nothing here: one process per store is the operator's job.
func lockFile(*os.File) error { return nil }
