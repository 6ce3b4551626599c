//go:build linux

package channel_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/netcluster/netcluster/channel"
	"golang.org/x/sys/unix"
)

// TestSocketModeAndGroup checks that the socket file gets the mode and
// group asked for.
func TestSocketModeAndGroup(t *testing.T) {
	gid := os.Getgid()
	if os.Getuid() == 0 {
		gid = otherUID // root may give any group
	} else if groups, _ := os.Getgroups(); len(groups) > 1 {
		for _, g := range groups {
			if g != gid {
				gid = g
				break
			}
		}
	}
	ch := listen(t, channel.Config{Name: "A", Mode: 0o640, Group: strconv.Itoa(gid)})
	fi, err := os.Lstat(ch.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 || int(fi.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Errorf("socket mode %04o group %d, want 0640 and %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(ch.Path()), ".b*")); len(leftovers) != 0 {
		t.Errorf("the private bind directory is left behind: %v", leftovers)
	}
}

// TestSocketAppearsWhole watches the socket directory with inotify while
// a channel opens with mode 0600 under a umask that lets anyone in: the
// socket must come into place by a rename, whole, never be created at
// its path (where it would exist for a moment with the umask's mode
// before its chmod).
func TestSocketAppearsWhole(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o700)
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Skipf("inotify: %v", err)
	}
	ch, err := channel.Listen(channel.Config{Name: "control", Path: filepath.Join(dir, "control.sock"), Mode: 0o600, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	buf := make([]byte, 64<<10)
	n, _ := unix.Read(fd, buf)
	var created, moved bool
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if name != "control.sock" {
			continue
		}
		created = created || ev.Mask&unix.IN_CREATE != 0
		moved = moved || ev.Mask&unix.IN_MOVED_TO != 0
	}
	if created || !moved {
		t.Errorf("the socket was created at its path (%v) or not renamed there (%v): it existed with the umask's mode before its chmod", created, !moved)
	}
	if fi, err := os.Lstat(ch.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %v, %v; want mode 0600", fi.Mode(), err)
	}
}

// TestSocketDirectoryOwner checks that a socket directory of another user
// is refused with a message that names it and its owner, and so is one
// its group may write.
func TestSocketDirectoryOwner(t *testing.T) {
	base, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	logger := slog.New(slog.DiscardHandler)

	group := filepath.Join(base, "group")
	os.Mkdir(group, 0o770)
	os.Chmod(group, 0o770)
	if _, err := channel.Listen(channel.Config{Name: "A", Path: filepath.Join(group, "A.sock"), Logger: logger}); err == nil || !strings.Contains(err.Error(), "writable by its group") {
		t.Errorf("group-writable directory: %v, want a refusal", err)
	}

	if os.Getuid() != 0 {
		t.Skip("making a directory of another user needs root")
	}
	theirs := filepath.Join(base, "theirs")
	os.Mkdir(theirs, 0o777)
	os.Chmod(theirs, 0o777|os.ModeSticky) // lets us in, but they can remove our sockets
	if err := os.Chown(theirs, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	_, err = channel.Listen(channel.Config{Name: "A", Path: filepath.Join(theirs, "A.sock"), Logger: logger})
	if err == nil || !strings.Contains(err.Error(), theirs) || !strings.Contains(err.Error(), "owned by uid "+strconv.Itoa(otherUID)) {
		t.Errorf("directory of uid %d: %v, want a refusal naming it and its owner", otherUID, err)
	}
}
