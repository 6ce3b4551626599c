//go:build !unix

package main

import "os"

// resizeSignals is empty where no signal says that the terminal changed
// size: the prompt reads the size before each line instead.
var resizeSignals []os.Signal
