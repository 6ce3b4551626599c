package channel_test

import (
	"bufio"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestPingedIdleClientsStaySmall connects clients that send nothing but
// the answers to the server's pings, many rounds of them, and checks
// that the server's heap does not grow by a large read buffer per
// client: pongs are not the traffic that the large buffer is for.
func TestPingedIdleClientsStaySmall(t *testing.T) {
	const clients, rounds = 50, 24
	ch := listen(t, channel.Config{Name: "A", PingInterval: 10 * time.Millisecond, PingTimeout: 10 * time.Second})
	var pinged [clients]atomic.Int64
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		for _, nc := range conns {
			nc.Close()
		}
		wg.Wait()
	})
	for i := range clients {
		nc, err := net.Dial("unix", ch.Path())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		h := wire.Hello{Version: wire.PingVersion, ClientID: uuid.New(), Name: "pinged"}
		if _, err := nc.Write(wire.AppendHello(nil, &h)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fr := wire.NewFrameReader(bufio.NewReaderSize(nc, 64), 0)
			for {
				frame, err := fr.ReadFrame()
				if err != nil {
					return // closed at the end of the test
				}
				if ft, _ := wire.TypeOf(frame[wire.HeaderLen:]); ft == wire.FramePing {
					if _, err := nc.Write(wire.AppendPong(nil)); err != nil {
						return
					}
					pinged[i].Add(1)
				}
			}
		}()
	}
	routertest.WaitFor(t, "the clients to be pinged once", func() bool { return fewest(pinged[:]) >= 1 })
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	// A client is pinged only once its last pong is an interval old, so
	// by the time it is pinged again the server has read its pong.
	routertest.WaitFor(t, "the clients to be pinged many times", func() bool { return fewest(pinged[:]) >= rounds+1 })
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapAlloc) - int64(base)
	t.Logf("heap grew by %d bytes over %d rounds of pings to %d clients", grown, rounds, clients)
	if per := grown / clients; per > 8<<10 {
		t.Errorf("the heap grew by %d bytes per client that only answered pings", per)
	}
}

func fewest(n []atomic.Int64) int64 {
	least := n[0].Load()
	for i := range n {
		least = min(least, n[i].Load())
	}
	return least
}
