//go:build !windows

package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultSocketTemplate is where ncserver puts its sockets unless the
// configuration's "socket" key says otherwise:
// $XDG_RUNTIME_DIR/netcluster/{channel}.sock when XDG_RUNTIME_DIR is set to
// an absolute path, else /tmp/netcluster-<uid>/{channel}.sock. (On
// Windows, \\.\pipe\netcluster-{channel}.)
func DefaultSocketTemplate() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "netcluster", ChannelPlaceholder+".sock")
	}
	return filepath.Join("/tmp", fmt.Sprintf("netcluster-%d", os.Getuid()), ChannelPlaceholder+".sock")
}

// dialSocket connects to a channel's Unix socket.
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// noServer tells whether a dial error means nobody serves the socket.
func noServer(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
