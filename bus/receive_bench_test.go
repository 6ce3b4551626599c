package bus_test

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
)

// feeder is a stand-in server for the receive benchmark: it answers one
// client's hello and then writes event frames to it as fast as the
// socket takes them, so that the client's receive path (read loop,
// decoding, hand-off, dispatcher, listener) is all that is measured.
type feeder struct {
	ln    net.Listener
	path  string
	start chan struct{} // closed when the client listens: the stream begins
	done  chan struct{}
}

func newFeeder(b *testing.B, events int, size int) *feeder {
	b.Helper()
	path := filepath.Join(b.TempDir(), "a.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	f := &feeder{ln: ln, path: path, start: make(chan struct{}), done: make(chan struct{})}
	b.Cleanup(func() { ln.Close(); <-f.done })
	// 256 frames, written again and again.
	var batch []byte
	data := append([]byte{0xc4, byte(size)}, make([]byte, size)...)
	for range 256 {
		m := wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: "A", Event: "tick", Data: data}
		batch = wire.AppendEvent(batch, &m)
	}
	go func() {
		defer close(f.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := wire.NewFrameReader(br, 0).ReadFrame(); err != nil {
			return
		}
		// Version 1: no pings, nothing to answer while the stream runs.
		w := wire.Welcome{Version: 1, Node: uuid.New(), Channel: "A", MaxFrame: wire.DefaultMaxFrame}
		if _, err := c.Write(wire.AppendWelcome(nil, &w)); err != nil {
			return
		}
		<-f.start
		for sent := 0; sent < events; sent += 256 {
			if _, err := c.Write(batch); err != nil {
				return
			}
		}
	}()
	return f
}

// BenchmarkReceive measures a client's receive path: events per second
// from its socket to a listener that counts them.
func BenchmarkReceive(b *testing.B) {
	b.ReportAllocs()
	events := (b.N + 255) / 256 * 256
	f := newFeeder(b, events, 128)
	got := make(chan struct{})
	n := 0
	c, err := bus.Dial(context.Background(), "A", bus.Socket(f.path))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.On("tick", func(bus.Message) {
		if n++; n == events {
			close(got)
		}
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	close(f.start)
	<-got
	b.StopTimer()
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
