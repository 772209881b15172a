//go:build !unix

package component

import (
	"io"
	"syscall"
)

// writeNow writes b whole (a blocking write): systems without unix
// descriptors get no write that does not wait.
func writeNow(c syscall.Conn, b []byte) (int, error) {
	w, ok := c.(io.Writer)
	if !ok {
		return 0, syscall.EINVAL
	}
	return w.Write(b)
}
