//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// canRestart says whether ncserver answers the control request restart
// by starting itself again.
const canRestart = true

// reexec replaces the process with a new run of the same binary, with the
// same arguments and environment: the process id stays, as a service
// manager expects, and the new run reads its configuration file anew.
// os.Executable names the file the binary was started from, so a binary
// replaced there since (an upgrade) is the one that runs. reexec returns
// only when it failed.
func reexec() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the executable: %w", err)
	}
	if err := syscall.Exec(exe, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", exe, err)
	}
	return nil
}
