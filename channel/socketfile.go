package channel

import (
	"fmt"
	"io/fs"
	"os"
)

// The socket file's mode and group, which a reload may change in place.

// Mode is the socket's file mode.
func (ch *Channel) Mode() fs.FileMode { return fs.FileMode(ch.mode.Load()) }

// SetMode changes the permissions of the channel's socket file in place;
// connected clients are not affected.
func (ch *Channel) SetMode(mode fs.FileMode) error {
	if err := os.Chmod(ch.cfg.Path, mode.Perm()); err != nil {
		return fmt.Errorf("channel %s: setting the socket's mode: %w", ch.cfg.Name, err)
	}
	ch.mode.Store(uint32(mode.Perm()))
	return nil
}

// Group is the socket's group as configured: a name, a number, or ""
// for the server's own.
func (ch *Channel) Group() string {
	if g := ch.group.Load(); g != nil {
		return *g
	}
	return ""
}

// SetGroup changes the group of the channel's socket file in place ("":
// the server's own); connected clients are not affected.
func (ch *Channel) SetGroup(group string) error {
	if group == ch.Group() {
		return nil
	}
	gid := os.Getgid()
	if group != "" {
		g, err := LookupGroup(group)
		if err != nil {
			return fmt.Errorf("channel %s: socket group: %w", ch.cfg.Name, err)
		}
		gid = g
	}
	if err := os.Lchown(ch.cfg.Path, -1, gid); err != nil {
		return fmt.Errorf("channel %s: giving the socket group %s (the server must be a member of it): %w", ch.cfg.Name, group, err)
	}
	ch.group.Store(&group)
	return nil
}
