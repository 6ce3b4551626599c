package router_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSStatsDuringSwap: a reload that swaps the NATS link waits while
// the old link delivers what it took, here for as long as a client that
// stopped reading holds the channel back (until stalltimeout drops it).
// Meanwhile NATSStats, and so stats and the metrics, answers at once,
// and its counters do not go back: the old link's count until they are
// added to those of the links closed before. Before, it waited for the
// swap to end.
func TestNATSStatsDuringSwap(t *testing.T) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1 := patientSender(t, url)
	const stall = 4 * time.Second
	members := func(extra string) string {
		return natsMembers(url, extra, `"maxframe": 16384, "maxpending": 65536, "stalltimeout": "4s", `+bridged)
	}
	s2 := routertest.NewServer(t, members(""))
	waitNATS(t, s1, s2)
	all := routertest.Record(t, s2.Dial(t, "A"), ".*")
	pub := s1.Dial(t, "A")
	probe(t, pub, all)

	stuck := s2.Dial(t, "A", bus.QueueLen(16))
	release := make(chan struct{})
	if _, err := stuck.On("seq", func(bus.Message) { <-release }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release) }) // before the client closes
	// Flow control holds the publisher back once the second server
	// stops taking events: it emits on a goroutine of its own, which
	// ends when the publisher is closed, if not before.
	go func() {
		for i := range 20_000 {
			if pub.Emit("seq", seqData(i)) != nil {
				return
			}
		}
	}()
	ctl := s2.Dial(t, "control")
	// The stopped client's own queue past its high-water mark (half of
	// maxpending), and nothing more written to it for a while: its
	// socket is full. The channel's pending alone would add the
	// recorder's to it, and a queue past the mark alone can still drain
	// on a busy machine, while the client reads what it takes before it
	// stops: its queue, and its listener's.
	var out string
	var outSince time.Time
	routertest.WaitFor(t, "the stopped client to hold the channel back", func() bool {
		ans := routertest.Control(t, ctl, "showclient", map[string]any{"id": stuck.ID().String()})
		pending, _ := strconv.ParseUint(fmt.Sprint(ans["pending"]), 10, 64)
		if now := fmt.Sprint(ans["bytes_out"]); pending <= 65536/2 || now != out {
			out, outSince = now, time.Now()
			return false
		}
		return time.Since(outSince) >= 200*time.Millisecond
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
	// By then the reload has opened the new link and waits for the old
	// one, and still does after the read, unless the stopped client did
	// not hold it back: then the test proves nothing.
	time.Sleep(300 * time.Millisecond)
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
	if took > stall/4 {
		t.Fatalf("NATSStats took %v during the swap: it waited for the old link to close", took)
	}
	notDone("as stats was read")
	if mid.EventsIn < before.EventsIn {
		t.Errorf("events_in went back from %d to %d during the swap", before.EventsIn, mid.EventsIn)
	}

	r := <-done
	if r.err != nil || !slices.Contains(r.settings, "nats.pendingmsgs") {
		t.Fatalf("reload: %v, settings %v; want a swap for nats.pendingmsgs", r.err, r.settings)
	}
	if after := natsStats(t, s2); after.EventsIn < mid.EventsIn {
		t.Errorf("events_in went back from %d to %d after the swap", mid.EventsIn, after.EventsIn)
	}
}
