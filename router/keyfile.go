package router

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
)

// maxKeyFile bounds the size of a key file: a secret is short, and a key
// file pointing at a device must not be read forever.
const maxKeyFile = 64 << 10

// KeyFilePath returns the path of the key file: KeyFile as written when
// it is absolute, else relative to the directory of the configuration
// file. It returns "" when KeyFile is not set.
func (c *Config) KeyFilePath() string {
	if c.KeyFile == "" || filepath.IsAbs(c.KeyFile) {
		return c.KeyFile
	}
	return filepath.Join(filepath.Dir(c.File), c.KeyFile)
}

// Secret returns the shared secret that seals the cluster's datagrams:
// the bytes of Key, or the contents of the key file less one line ending
// at its end; nil when neither is set. The key file is read at each
// call, so a server reads it at start and at every reload. An error
// names the file, never the secret. A key file that the group or others
// may read is logged as a warning to log, when log is not nil (except
// on Windows, whose files have no such mode bits).
func (c *Config) Secret(log *slog.Logger) ([]byte, error) {
	if c.Key != "" {
		return []byte(c.Key), nil
	}
	path := c.KeyFilePath()
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("router: keyfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("router: keyfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("router: keyfile %s is not a regular file", path)
	}
	// Windows has ACLs, not these bits, which say nothing there.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && log != nil && runtime.GOOS != "windows" {
		log.Warn("the key file is readable by others than its owner: chmod 600 it", "keyfile", path, "mode", fmt.Sprintf("%04o", perm))
	}
	secret, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("router: keyfile: reading %s: %w", path, err)
	}
	if len(secret) > maxKeyFile {
		return nil, fmt.Errorf("router: keyfile %s is over %d bytes: is it the right file?", path, maxKeyFile)
	}
	if s, ok := bytes.CutSuffix(secret, []byte("\n")); ok {
		secret, _ = bytes.CutSuffix(s, []byte("\r"))
	}
	if len(secret) == 0 {
		return nil, errors.New("router: keyfile " + path + " is empty")
	}
	return secret, nil
}
