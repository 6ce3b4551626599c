//go:build !windows

package channel

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// listenSocket creates the Unix socket at path with the given mode. An
// existing socket that a live process answers on is left alone and
// reported as *InUseError; one that nobody answers on (left by a server
// that was killed) is removed and replaced.
func listenSocket(path string, mode fs.FileMode) (_ net.Listener, stale bool, err error) {
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, false, err
	}
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, false, fmt.Errorf("channel: %s exists and is not a socket; not replacing it", path)
		}
		if err := probe(path); err != nil {
			return nil, false, err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("channel: removing stale socket: %w", err)
		}
		stale = true
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, false, fmt.Errorf("channel: listening: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, false, fmt.Errorf("channel: setting socket mode: %w", err)
	}
	return ln, stale, nil
}

// probe tells a live socket from a stale one: nil means nobody listens.
func probe(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("channel: checking existing socket %s: %w", path, err)
	}
	defer c.Close()
	e := &InUseError{Path: path}
	if cred, ok := peerCred(c); ok {
		e.PID = cred.PID
		e.Program = programName(cred.PID)
	}
	return e
}

// ensureDir creates the socket directory (owner and group only) if it is
// missing, and refuses a directory that anyone could plant files in.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("channel: creating socket directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("channel: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("channel: socket directory %s is not a directory", dir)
	}
	if m := fi.Mode(); m.Perm()&0o002 != 0 && m&fs.ModeSticky == 0 {
		return fmt.Errorf("channel: socket directory %s is writable by everyone; refusing to use it", dir)
	}
	return nil
}
