//go:build !windows

package wire

import (
	"fmt"
	"os"
	"path/filepath"
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
