//go:build linux

package testbed

import (
	"os/exec"
	"syscall"
)

// setProcAttr starts cmd as the leader of a new process group (so that it and
// its children are signalled together), killed by the kernel if the test
// process dies first, and optionally under another user.
func setProcAttr(cmd *exec.Cmd, as *syscall.Credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: as}
}
