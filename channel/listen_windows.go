//go:build windows

package channel

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// listenSocket creates the named pipe at path (\\.\pipe\netcluster-A by
// default). Windows has no file modes for pipes, so mode only tells the
// control channel (0600) from the others: the control pipe admits the
// current user alone; the others admit the current user, SYSTEM and the
// Administrators group. A pipe name that another process serves is
// refused with *InUseError; pipes vanish with their process, so none is
// ever stale.
func listenSocket(path string, mode fs.FileMode, _ int) (_ net.Listener, stale bool, err error) {
	if !strings.HasPrefix(strings.ToLower(filepath.ToSlash(path)), `//./pipe/`) &&
		!strings.HasPrefix(strings.ToLower(filepath.ToSlash(path)), `//?/pipe/`) {
		return nil, false, fmt.Errorf(`channel: %s is not a named pipe path (\\.\pipe\...); on Windows the socket template must name pipes`, path)
	}
	sddl, err := pipeSDDL(mode)
	if err != nil {
		return nil, false, err
	}
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{
		SecurityDescriptor: sddl,
		InputBufferSize:    64 << 10,
		OutputBufferSize:   64 << 10,
	})
	if err != nil {
		// The first instance of a pipe is created exclusively: access is
		// denied while another process serves the name.
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, false, &InUseError{Path: path}
		}
		return nil, false, fmt.Errorf("channel: listening on pipe %s: %w", path, err)
	}
	return ln, false, nil
}

// pipeSDDL is the security descriptor of a channel's pipe, in SDDL: a
// protected DACL that grants full access to the current user, and unless
// mode is owner-only (the control channel), to SYSTEM and the
// Administrators group too. The group bits of socketmode have no Windows
// counterpart and are not mapped.
func pipeSDDL(mode fs.FileMode) (string, error) {
	tok := windows.GetCurrentProcessToken()
	user, err := tok.GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("channel: finding the current user for the pipe's access list: %w", err)
	}
	sddl := "D:P(A;;GA;;;" + user.User.Sid.String() + ")"
	if mode.Perm()&0o077 != 0 {
		sddl += "(A;;GA;;;SY)(A;;GA;;;BA)"
	}
	return sddl, nil
}

// ensureDir has nothing to do for pipes.
func ensureDir(string) error { return nil }
