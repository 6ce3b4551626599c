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

// listenSocket creates the Unix socket at path with the given mode and,
// when gid is not -1, group. An existing socket that a live process
// answers on is left alone and reported as *InUseError; one that nobody
// answers on (left by a server that was killed) is removed and replaced.
//
// The socket never exists at path with a wider mode than asked, not even
// for an instant: it is bound inside a private directory (mode 0700, made
// next to path), given its mode and group there, and renamed into place.
// Setting the umask around the bind would do the same, but the umask is
// the whole process's: a file another goroutine created meanwhile (a
// second channel opening on a reload, a log file) would get it too.
func listenSocket(path string, mode fs.FileMode, gid int) (_ net.Listener, stale bool, err error) {
	dir := filepath.Dir(path)
	if err := ensureDir(dir); err != nil {
		return nil, false, err
	}
	unlock, err := lockDir(dir)
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
	ln, err := bindPrivate(path, mode, gid)
	if err != nil {
		return nil, false, err
	}
	return ln, stale, nil
}

// bindPrivate binds the socket in a private directory beside path, sets
// its mode and group, and renames it to path.
func bindPrivate(path string, mode fs.FileMode, gid int) (net.Listener, error) {
	priv, err := os.MkdirTemp(filepath.Dir(path), ".b")
	if err != nil {
		return nil, fmt.Errorf("channel: making a private directory to bind in: %w", err)
	}
	defer os.RemoveAll(priv)
	// MkdirTemp makes it 0700; a tight short name keeps the path within
	// the system's limit whenever path itself is.
	tmp := filepath.Join(priv, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("channel: listening: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(step string, err error) (net.Listener, error) {
		ln.Close()
		return nil, fmt.Errorf("channel: %s: %w", step, err)
	}
	if err := os.Chmod(tmp, mode.Perm()); err != nil {
		return fail("setting socket mode", err)
	}
	if gid >= 0 {
		if err := os.Lchown(tmp, -1, gid); err != nil {
			return fail(fmt.Sprintf("giving the socket group %d (the server must be a member of it)", gid), err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail("moving the socket into place", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		os.Remove(path)
		return fail("checking the socket", err)
	}
	return &socketListener{UnixListener: ln, path: path, file: fi}, nil
}

// socketListener removes its socket file when it closes, if the file is
// still the one it made (a server that replaced it as stale owns the
// new one).
type socketListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
		os.Remove(l.path)
	}
	return err
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
// missing, and refuses one that someone else could plant or replace
// sockets in: a directory owned by another user than the server's (or
// root), or one writable by its group or by everyone without the sticky
// bit. Otherwise, where XDG_RUNTIME_DIR is unset, another local user
// could make the server's default directory first, and own its sockets.
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
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := os.Getuid(); int(st.Uid) != uid && st.Uid != 0 {
			return fmt.Errorf("channel: socket directory %s is owned by uid %d, not by this server's uid %d (nor root); refusing to use it: remove it, or point the socket template elsewhere", dir, st.Uid, uid)
		}
	}
	switch m := fi.Mode(); {
	case m&fs.ModeSticky != 0:
	case m.Perm()&0o002 != 0:
		return fmt.Errorf("channel: socket directory %s is writable by everyone; refusing to use it", dir)
	case m.Perm()&0o020 != 0:
		return fmt.Errorf("channel: socket directory %s is writable by its group; refusing to use it", dir)
	}
	return nil
}
