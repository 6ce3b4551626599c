//go:build windows

package bus

import (
	"context"
	"errors"
	"io/fs"
	"net"

	"github.com/Microsoft/go-winio"
)

// dialSocket connects to a channel's named pipe.
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	return winio.DialPipeContext(ctx, path)
}

// noServer tells whether a dial error means nobody serves the pipe.
func noServer(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}
