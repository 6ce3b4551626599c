//go:build ncpoison

package channel

// poisonReleased is true in builds with the ncpoison tag, which the test
// suite runs under to make any use of a released frame buffer show; see
// frameBuf.release.
const poisonReleased = true
