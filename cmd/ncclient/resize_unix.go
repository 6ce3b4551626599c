//go:build unix

package main

import (
	"os"
	"syscall"
)

// resizeSignals say that the terminal changed size.
var resizeSignals = []os.Signal{syscall.SIGWINCH}
