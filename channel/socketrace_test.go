//go:build linux || darwin

package channel_test

import (
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestStaleSocketRace starts several channels at once on one path where a
// killed server left its socket: exactly one must win, the others must
// be refused as in use, and the winner's socket must still answer (no
// loser removed it as stale after the winner had made it).
func TestStaleSocketRace(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(routertest.ShortTempDir(t), "A.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()

		const n = 6
		var wg sync.WaitGroup
		chans := make([]*channel.Channel, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				chans[i], errs[i] = channel.Listen(channel.Config{Name: "A", Path: path, Logger: slog.New(slog.DiscardHandler)})
			})
		}
		wg.Wait()
		var won []*channel.Channel
		for i, err := range errs {
			switch {
			case err == nil:
				won = append(won, chans[i])
			case !errors.Is(err, channel.ErrInUse):
				t.Errorf("round %d: start %d: %v, want success or ErrInUse", round, i, err)
			}
		}
		if len(won) != 1 {
			t.Errorf("round %d: %d channels started on one path, want 1", round, len(won))
		}
		if c, err := net.Dial("unix", path); err != nil {
			t.Errorf("round %d: the winner's socket does not answer: %v", round, err)
		} else {
			c.Close()
		}
		for _, ch := range won {
			ch.Close()
		}
	}
}
