// Package netcluster holds what the whole repository shares: the default
// server configuration, embedded so that ncserver run without a path uses
// the same file that ships beside it. The client API is in package bus;
// the server is in package router.
package netcluster

import _ "embed"

// DefaultConfig is config.json at the repository root, byte for byte: the
// configuration ncserver uses when it is given no path. Parse it with
// router.Parse; do not modify it.
//
//go:embed config.json
var DefaultConfig []byte
