//go:build windows

package wire

// DefaultSocketTemplate is where ncserver puts its channels on Windows
// unless the configuration's "socket" key says otherwise: the named pipe
// \\.\pipe\netcluster-{channel}, the name the original netcluster used.
func DefaultSocketTemplate() string {
	return `\\.\pipe\netcluster-` + ChannelPlaceholder
}
