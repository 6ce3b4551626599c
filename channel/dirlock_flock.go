//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package channel

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on the socket directory for the short
// time it takes to check, remove and create a socket in it, so that two
// servers starting at once cannot both take a stale socket for theirs:
// without it, the second would remove the socket the first had just
// created. The lock is advisory and ends with unlock.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("channel: locking socket directory: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("channel: locking socket directory %s: %w", dir, err)
	}
	return func() { f.Close() }, nil // closing the descriptor releases the lock
}
