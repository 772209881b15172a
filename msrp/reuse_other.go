//go:build !linux

package msrp

import "syscall"

// reusable: elsewhere connections leave from any port.
const reusable = false

func reuseControl(string, string, syscall.RawConn) error { return nil }
