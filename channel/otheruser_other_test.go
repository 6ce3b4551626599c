//go:build !linux

package channel_test

// dialAsMain has nothing to do where TestOtherUser does not run.
func dialAsMain() {}
