package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/router/routertest"
)

// TestEarlySignal sends SIGTERM the moment the first socket appears,
// while the server is still starting: it must stop gracefully (exit 0,
// sockets removed), never die of the signal.
func TestEarlySignal(t *testing.T) {
	for range 10 {
		rt := routertest.ShortTempDir(t)
		sock := filepath.Join(rt, "netcluster", "A.sock")
		p := start(t, rt)
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never appeared", sock)
			}
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exit(t); code != 0 {
			t.Fatalf("exit status %d after an early SIGTERM, want 0", code)
		}
	}
}
