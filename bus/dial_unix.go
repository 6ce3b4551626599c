//go:build !windows

package bus

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// dialSocket connects to a channel's Unix socket.
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// noServer tells whether a dial error means nobody serves the socket.
func noServer(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
