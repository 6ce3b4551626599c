package channel

import "log/slog"

// Kill closes the connection at once, as a connection that breaks ends:
// what is queued for it is dropped.
func (c *Conn) Kill() { c.kill(slog.LevelInfo, "killed by a test") }
