//go:build !ncpoison

package channel

// poisonReleased is true in builds with the ncpoison tag; see
// frameBuf.release.
const poisonReleased = false
