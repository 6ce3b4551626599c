// Package seeds loads the seed inputs of the fuzz targets, kept in
// testdata/fuzz, for the tests of every package.
package seeds

import (
	"os"
	"path/filepath"
	"testing"
)

// File is a seed input: the base name of its file, and its content.
type File struct {
	Name string
	Data []byte
}

// Load returns the files in dir, by name; it fails tb when there are
// none, so that a moved corpus is not fuzzed from nothing.
func Load(tb testing.TB, dir string) []File {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no seed inputs in %s: %v", dir, err)
	}
	out := make([]File, 0, len(names))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, File{Name: filepath.Base(name), Data: b})
	}
	return out
}
