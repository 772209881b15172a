//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package component

import "syscall"

// setMaxSegment does nothing where TCP_MAXSEG is not available: the
// system's segment size stays.
func setMaxSegment(syscall.RawConn, int) error { return nil }
