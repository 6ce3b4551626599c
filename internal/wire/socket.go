package wire

import (
	"regexp"
	"strings"
)

// ChannelPlaceholder is replaced by the channel name in a socket template.
const ChannelPlaceholder = "{channel}"

var channelName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ValidChannelName reports whether name can name a channel: 1 to 64 of
// A-Z, a-z, 0-9, '_', '.', '-', and not "." or "..". A name becomes part of
// a socket path, so nothing else is allowed.
func ValidChannelName(name string) bool {
	return channelName.MatchString(name) && name != "." && name != ".."
}

// SocketPath expands a socket template for a channel. An empty template
// means DefaultSocketTemplate.
func SocketPath(template, channel string) string {
	if template == "" {
		template = DefaultSocketTemplate()
	}
	return strings.ReplaceAll(template, ChannelPlaceholder, channel)
}
