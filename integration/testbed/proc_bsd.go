//go:build unix && !linux

package testbed

import (
	"os/exec"
	"syscall"
)

// setProcAttr starts cmd as the leader of a new process group (so that it and
// its children are signalled together), optionally under another user.
func setProcAttr(cmd *exec.Cmd, as *syscall.Credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: as}
}
