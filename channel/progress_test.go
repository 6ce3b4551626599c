package channel_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
)

// TestWriterRecordsProgressInAChunk: the writer records that a client
// that reads slowly but steadily takes what it writes while a chunk is
// still being written, not only once the chunk is out. A write into a
// full socket goes on only as the client reads its buffer well down, so
// a chunk can take such a client longer than the stall timeout; the
// stall check must not take it for a client that reads nothing. Before,
// the writer recorded progress only at the end of each chunk.
func TestWriterRecordsProgressInAChunk(t *testing.T) {
	node := uuid.New()
	ch := listen(t, channel.Config{Name: "A", Node: node, StallTimeout: 400 * time.Millisecond})
	slow := rawHelloTo(t, ch, wire.Hello{Version: 1, Name: "slow"})
	pub := rawHelloTo(t, ch, wire.Hello{Version: 1, Name: "pub"})
	conn := ch.Client(slow.id)

	// 64 events of 32 KiB: 2 MiB, in chunks of 256 KiB, under the
	// high-water mark, so that nobody is held and only the writer is
	// looked at.
	const events, size = 64, 32 << 10
	data := append([]byte{0xc6, 0, 0, size >> 8 & 0xff, 0}, make([]byte, size)...) // msgpack bin 32
	var batch []byte
	for range events {
		f, _ := pub.event(node, "A", "big", data)
		batch = append(batch, f...)
	}
	if _, err := pub.nc.Write(batch); err != nil {
		t.Fatal(err)
	}

	// The client reads 4 KiB every 5 ms, some 800 KB/s, until it has
	// every frame.
	done := make(chan int, 1)
	go func() {
		buf := make([]byte, 4096)
		total := 0
		for total < len(batch) {
			slow.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := slow.nc.Read(buf)
			total += n
			if err != nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		done <- total
	}()

	inChunk := 0
	took, out := conn.Progress()
	for reading := true; reading; {
		select {
		case total := <-done:
			if total < len(batch) {
				t.Fatalf("the client read %d bytes of %d", total, len(batch))
			}
			reading = false
		case <-time.After(time.Millisecond):
		}
		nt, no := conn.Progress()
		if nt != took && no == out {
			inChunk++
		}
		took, out = nt, no
	}
	if inChunk == 0 {
		t.Error("the writer recorded progress only as each chunk ended")
	}
	if st := ch.Stats(); st.StallTimeouts != 0 {
		t.Errorf("%d stall timeouts", st.StallTimeouts)
	}
	t.Logf("progress recorded %d times within a chunk", inChunk)
}
