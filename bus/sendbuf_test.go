package bus_test

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestEmitBehindSlowReader emits a burst of large events to a server that
// reads slowly, so that one batch of the client grows past the size it
// keeps for reuse, and then a stream of small events, which go out in
// smaller batches. It checks that the server reads every event once,
// intact and in order.
func TestEmitBehindSlowReader(t *testing.T) {
	path := filepath.Join(routertest.ShortTempDir(t), "A.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const big, small, bigSize, smallSize = 24, 1500, 64 << 10, 30
	const events = big + small
	type result struct {
		ids     [][16]byte
		damaged int
		err     error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() { done <- res }()
		c, err := ln.Accept()
		if err != nil {
			res.err = err
			return
		}
		defer c.Close()
		fr := wire.NewFrameReader(bufio.NewReader(c), 1<<20)
		if _, res.err = fr.ReadFrame(); res.err != nil { // the hello
			return
		}
		if _, res.err = c.Write(wire.AppendWelcome(nil, &wire.Welcome{Version: 1, Channel: "A", MaxFrame: 1 << 20})); res.err != nil {
			return
		}
		for len(res.ids) < events {
			frame, err := fr.ReadFrame()
			if err != nil {
				res.err = err
				return
			}
			m, err := wire.DecodeEvent(frame[wire.HeaderLen:])
			var b []byte
			if err == nil {
				err = wire.DecodeData(m.Data, &b)
			}
			if i := len(res.ids); err != nil || len(b) < 2 || b[0] != byte(i) || b[len(b)-1] != byte(i) {
				res.damaged++
			}
			res.ids = append(res.ids, m.ID)
			if len(res.ids) <= big {
				time.Sleep(2 * time.Millisecond) // the big batch waits
			}
		}
	}()
	c, err := bus.Dial(context.Background(), "A", bus.Socket(path))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range events {
		b := make([]byte, smallSize)
		if i < big {
			b = make([]byte, bigSize)
		}
		b[0], b[len(b)-1] = byte(i), byte(i)
		if err := c.Emit("e", b); err != nil {
			t.Fatal(err)
		}
		if i >= big {
			time.Sleep(20 * time.Microsecond) // small batches, written while Emit goes on
		}
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	seen := make(map[[16]byte]bool)
	for _, id := range res.ids {
		seen[id] = true
	}
	if len(seen) != events || res.damaged != 0 {
		t.Errorf("the server read %d distinct events of %d, %d of them damaged or out of order", len(seen), events, res.damaged)
	}
}
