//go:build !unix

package component

import "syscall"

// haveWriteNow: without unix descriptors, tryWrite writes whole (blocking).
const haveWriteNow = false

func writeNow(syscall.RawConn, []byte) (int, error) { return 0, syscall.EINVAL }
