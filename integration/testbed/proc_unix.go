//go:build unix

package testbed

import (
	"os"
	"syscall"
)

// portLocker holds POSIX record locks (fcntl F_SETLK), one byte per port, on
// one shared file. The kernel drops them when the process exits, so a
// crashed test leaves nothing locked. The file stays open for the life of the
// process: closing any descriptor of it would drop all of the process's locks.
type portLocker struct {
	f *os.File
}

// openPortLocker opens (creating) the lock file; nil if it cannot, in which
// case the bind check alone guards ports.
func openPortLocker(path string) *portLocker {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil
	}
	_ = f.Chmod(0o666) // shared by every user's tests
	return &portLocker{f: f}
}

// lock takes port without waiting; false if another process holds it.
func (l *portLocker) lock(port int) bool {
	if l == nil {
		return true
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: int64(port), Len: 1}
	return syscall.FcntlFlock(l.f.Fd(), syscall.F_SETLK, &lk) == nil
}

func (l *portLocker) unlock(port int) {
	if l == nil {
		return
	}
	lk := syscall.Flock_t{Type: syscall.F_UNLCK, Whence: 0, Start: int64(port), Len: 1}
	_ = syscall.FcntlFlock(l.f.Fd(), syscall.F_SETLK, &lk)
}

// signalGroup sends sig to the process group led by pid (every process of
// this package is started as the leader of its own group).
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// Signals used to stop processes.
const (
	sigTerm     = syscall.SIGTERM
	sigKill     = syscall.SIGKILL
	sigSoftStop = syscall.SIGUSR1 // SIPp: finish running calls, then exit
)
