//go:build ncpoison

package router_test

// poisonBuild says that released frame buffers are poisoned instead of
// reused (channel, -tags ncpoison), so every event allocates one.
const poisonBuild = true
