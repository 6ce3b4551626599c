//go:build !windows

package main

// runAsService reports that ncserver does not run as a service: only the
// Windows service manager needs a program to speak its protocol.
// Elsewhere a service manager (systemd, launchd) runs the console program
// and stops it with SIGTERM.
func runAsService(*app) (code int, ok bool) { return 0, false }
