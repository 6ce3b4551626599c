//go:build race

package main

// raceBuild is set when the tests run with -race: the binary they run is
// then built with the race detector too.
func init() { raceBuild = true }
