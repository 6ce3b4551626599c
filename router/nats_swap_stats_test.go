package router_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSStatsDuringSwap: a reload that swaps the NATS link waits while
// the old link delivers what it took, here for as long as a client that
// never reads holds the channel back (until the test closes it, or
// stalltimeout drops it).
// Meanwhile NATSStats, and so stats and the metrics, answers at once,
// and its counters do not go back: the old link's count until they are
// added to those of the links closed before. Before, it waited for the
// swap to end.
func TestNATSStatsDuringSwap(t *testing.T) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1 := patientSender(t, url)
	members := func(extra string) string {
		return natsMembers(url, extra, `"maxframe": 16384, "maxpending": 65536, "stalltimeout": "6s", `+bridged)
	}
	s2 := routertest.NewServer(t, members(""))
	waitNATS(t, s1, s2)
	all := routertest.Record(t, s2.Dial(t, "A"), ".*")
	// A small send buffer: closing the publisher writes what it holds.
	pub := s1.Dial(t, "A", bus.SendBuffer(16<<10))
	probe(t, pub, all)

	// A client that never reads: what passes its queue's mark stays
	// there. (A bus client whose listener stops still reads what its
	// own queue takes, and on a busy machine that can come after its
	// queue at the server passed the mark, and drain it.)
	stuck := dialRaw(t, s2, "A")
	stuck.hello()
	// Flow control holds the publisher back once the second server
	// stops taking events: it emits on a goroutine of its own, which
	// ends after the swap, or when the publisher is closed.
	quit := make(chan struct{})
	go func() {
		for i := range 20_000 {
			select {
			case <-quit:
				return
			default:
			}
			if pub.Emit("seq", seqData(i)) != nil {
				return
			}
		}
	}()
	ctl := s2.Dial(t, "control")
	// The client's own queue past its high-water mark (half of
	// maxpending; the channel's pending would add the recorder's), with
	// its socket full: nothing more written to it for a while. A queue
	// past the mark alone can be a writer that a busy machine has not
	// run yet, which then empties it into the socket.
	var out string
	var outSince time.Time
	routertest.WaitFor(t, "the client that never reads to hold the channel back", func() bool {
		ans := routertest.Control(t, ctl, "showclient", map[string]any{"id": stuck.id.String()})
		pending, _ := strconv.ParseUint(fmt.Sprint(ans["pending"]), 10, 64)
		written, _ := strconv.ParseUint(fmt.Sprint(ans["bytes_out"]), 10, 64)
		if now := fmt.Sprint(written); pending <= 65536/2 || written < 64<<10 || now != out {
			out, outSince = now, time.Now()
			return false
		}
		return time.Since(outSince) >= 300*time.Millisecond
	})

	before := natsStats(t, s2)
	cfg := s2.ParseConfig(t, members(`"pendingmsgs": 100000`))
	type result struct {
		settings []string
		err      error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := s2.Reload(cfg)
		done <- result{rep.Settings, err}
	}()
	// Once the new link is open, the reload swaps it in and waits for
	// the old one, at once: a read before that would find no swap to
	// wait for. It still waits after the read, unless the client did not
	// hold the old link back: then the test proves nothing.
	routertest.WaitFor(t, "the reload to open the new link", func() bool {
		return strings.Count(s2.Logs.String(), `msg="NATS link opened"`) == 2
	})
	time.Sleep(200 * time.Millisecond)
	notDone := func(when string) {
		select {
		case r := <-done:
			t.Fatalf("the reload ended (%v, %v) %s: the test proves nothing", r.settings, r.err, when)
		default:
		}
	}
	notDone("before stats was read")
	start := time.Now()
	mid := natsStats(t, s2)
	took := time.Since(start)
	// NATSStats waits up to a second for the connection's figures
	// (natslink.Stats); waiting for the swap would take until
	// stalltimeout (6 s from when the client passed its mark) drops the
	// client, or the swap gives up on the old link (5 s).
	if took > 2*time.Second {
		t.Fatalf("NATSStats took %v during the swap: it waited for the old link to close", took)
	}
	notDone("as stats was read")
	if mid.EventsIn < before.EventsIn {
		t.Errorf("events_in went back from %d to %d during the swap", before.EventsIn, mid.EventsIn)
	}

	stuck.nc.Close() // the hold ends, and the swap
	r := <-done
	close(quit)
	if r.err != nil || !slices.Contains(r.settings, "nats.pendingmsgs") {
		t.Fatalf("reload: %v, settings %v; want a swap for nats.pendingmsgs", r.err, r.settings)
	}
	if after := natsStats(t, s2); after.EventsIn < mid.EventsIn {
		t.Errorf("events_in went back from %d to %d after the swap", mid.EventsIn, after.EventsIn)
	}
}
