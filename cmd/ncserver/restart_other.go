//go:build !unix

package main

import "errors"

// canRestart says whether ncserver answers the control request restart
// by starting itself again. Windows has no exec: a new process would have
// a new process id, which a service manager takes for the service having
// ended. The restart request is answered with an error instead; restart
// the service with the service manager (sc.exe stop, then sc.exe start).
const canRestart = false

// reexec is never called where canRestart is false.
func reexec() error { return errors.New("restarting in place is not supported on this system") }
