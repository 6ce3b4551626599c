package channel

import (
	"errors"
	"fmt"
)

// ErrInUse means another live server holds a channel's socket.
var ErrInUse = errors.New("channel: socket in use")

// InUseError names the socket and, where the system tells, the process
// that serves it. It matches ErrInUse with errors.Is.
type InUseError struct {
	Path    string
	PID     int    // 0 when unknown
	Program string // "" when unknown
}

func (e *InUseError) Error() string {
	switch {
	case e.PID != 0 && e.Program != "":
		return fmt.Sprintf("channel: socket %s is in use by %s (pid %d)", e.Path, e.Program, e.PID)
	case e.PID != 0:
		return fmt.Sprintf("channel: socket %s is in use by pid %d", e.Path, e.PID)
	}
	return fmt.Sprintf("channel: socket %s is in use by another process", e.Path)
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }
