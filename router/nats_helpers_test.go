package router_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// startJetStream starts a NATS server as startNATS does, on a free port,
// with JetStream and its store in a directory of the test's, its
// options changed by mods too.
func startJetStream(t testing.TB, mods ...func(*server.Options)) *server.Server {
	t.Helper()
	dir := t.TempDir()
	store := func(o *server.Options) { o.JetStream, o.StoreDir = true, dir }
	return startNATS(t, 0, append([]func(*server.Options){store}, mods...)...)
}

// startNATS starts a NATS server in process on 127.0.0.1, on port (0:
// any free one), with opts changed by each of mods; it is shut down when
// the test ends.
func startNATS(t testing.TB, port int, mods ...func(*server.Options)) *server.Server {
	t.Helper()
	if port == 0 {
		port = -1 // nats-server: a random port
	}
	o := &server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true}
	for _, f := range mods {
		f(o)
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { stopNATS(ns) })
	return ns
}

// stopNATS shuts a NATS server down and waits until it is.
func stopNATS(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

// natsPort is the port a NATS server listens on.
func natsPort(ns *server.Server) int { return ns.Addr().(*net.TCPAddr).Port }

// freePort returns a loopback port that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// bridged are the channels of a server bridged through NATS: A both
// ways, propagating to B, which is local only.
const bridged = `"channels": {"A": {"propagatetonats": true, "acceptfromnats": true, "propagatetochannels": "B"}, "B": {}}`

// natsMembers is a configuration joined to NATS at url, whose nats
// object holds extra members too, with channels.
func natsMembers(url, extra, channels string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return fmt.Sprintf(`"heartbeat": "100ms", "peertimeout": "2s", "nats": {"url": %q%s}, %s`, url, extra, channels)
}

// jsMembers is natsMembers for a server bridged through NATS at url with
// JetStream: its durable consumer durable, its catch-up wait catchup,
// and pack, "" or a member of the nats object.
func jsMembers(url, durable, catchup, pack string) string {
	extra := fmt.Sprintf(`"jetstream": true, "durable": %q, "catchup": %q`, durable, catchup)
	if pack != "" {
		extra += ", " + pack
	}
	return natsMembers(url, extra, bridged)
}

// natsNode starts an ncserver joined to NATS at url, channels bridged;
// extra, if any, are more members of its nats object.
func natsNode(t testing.TB, url string, extra ...string) *routertest.Server {
	t.Helper()
	extra = slices.DeleteFunc(extra, func(s string) bool { return s == "" })
	return routertest.NewServer(t, natsMembers(url, strings.Join(extra, ", "), bridged))
}

// bothFormats runs f twice, once per way events cross NATS: one to a
// message with headers (nats.pack off, the default), and in packs. pack
// is the nats member that sets it, or "".
func bothFormats(t *testing.T, f func(t *testing.T, pack string)) {
	t.Run("headers", func(t *testing.T) { f(t, "") })
	t.Run("packed", func(t *testing.T) { f(t, `"pack": true`) })
}

// natsStats are the NATS counters of ts; it fails the test when ts has
// no NATS link.
func natsStats(t testing.TB, ts *routertest.Server) router.NATSStats {
	t.Helper()
	st, ok := ts.NATSStats()
	if !ok {
		t.Fatal("the server has no NATS link")
	}
	return st
}

// waitSent waits until ts's NATS buffer is empty: the events kept in
// an outage have been sent, and the publishers that waited for room in
// it have sent theirs. The buffer drains at NATS's pace (with JetStream,
// the stream's acknowledgements'), which a loaded machine slows: it
// fails when no event has gone out for 10 s.
func waitSent(t testing.TB, ts *routertest.Server) {
	t.Helper()
	for out, deadline := uint64(0), time.Now(); ; time.Sleep(10 * time.Millisecond) {
		st := natsStats(t, ts)
		switch {
		case st.Buffered == 0:
			return
		case st.EventsOut != out:
			out, deadline = st.EventsOut, time.Now().Add(10*time.Second)
		case time.Now().After(deadline):
			t.Fatalf("%d bytes still in the buffer for NATS, and no event sent for 10 s", st.Buffered)
		}
	}
}

// waitNATS waits until every server is connected to NATS.
func waitNATS(t testing.TB, servers ...*routertest.Server) {
	t.Helper()
	for _, ts := range servers {
		routertest.WaitFor(t, "the NATS link to connect", func() bool {
			st, ok := ts.NATSStats()
			return ok && st.Connected
		})
	}
}

// probe emits "probe" events from pub every 50 ms until r hears one:
// proof that the bridge carries events now, after a (re)connection.
func probe(t testing.TB, pub interface{ Emit(string, any) error }, r *routertest.Recorder) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.Count("probe") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no probe crossed the bridge in 20 s")
		}
		if err := pub.Emit("probe", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dataOf decodes the int data of the events named event that r heard,
// in order.
func dataOf(t testing.TB, r *routertest.Recorder, event string) []int {
	t.Helper()
	var out []int
	for _, m := range r.Messages() {
		if m.Event != event {
			continue
		}
		var n int
		if err := m.Decode(&n); err != nil {
			t.Fatalf("decoding %s: %v", event, err)
		}
		out = append(out, n)
	}
	return out
}

// checkSeq checks that got is 0..n-1, in order, each once.
func checkSeq(t testing.TB, what string, got []int, n int) {
	t.Helper()
	if len(got) != n {
		t.Errorf("%s: %d events, want %d", what, len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Errorf("%s: event %d has data %d: out of order or doubled", what, i, v)
			return
		}
	}
}

// logCount is how many lines of ts's log hold s.
func logCount(ts *routertest.Server, s string) int { return strings.Count(ts.Logs.String(), s) }

// seqStream emits "seq" events numbered from 0 on a client, as fast as
// it takes them, until stop.
type seqStream struct {
	sent atomic.Int64
	stop chan struct{}
	done chan error
}

// streamSeq starts emitting on pub.
func streamSeq(pub interface{ Emit(string, any) error }) *seqStream {
	return streamSeqAhead(pub, nil, 0)
}

// streamSeqAhead starts emitting on pub, no more than about ahead events
// past what heard reports received (it looks every 256 events), when
// heard is not nil: for a reader that
// nothing holds its publisher for (over multicast, a slow local client
// holds the link for at most 100 ms at a time, docs/guarantees.md), so
// that a reader slower than the stream on a busy machine is not dropped
// for what the test does not test.
func streamSeqAhead(pub interface{ Emit(string, any) error }, heard func() int, ahead int) *seqStream {
	s := &seqStream{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for i := 0; ; i++ {
			for heard != nil && i%256 == 0 && i-heard() >= ahead {
				select {
				case <-s.stop:
					s.done <- nil
					return
				case <-time.After(time.Millisecond):
				}
			}
			select {
			case <-s.stop:
				s.done <- nil
				return
			default:
			}
			if err := pub.Emit("seq", i); err != nil {
				s.done <- err
				return
			}
			s.sent.Store(int64(i + 1))
		}
	}()
	return s
}

// flow waits until n more events have been emitted.
func (s *seqStream) flow(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for at := s.sent.Load(); s.sent.Load() < at+n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stream emitted %d events in 30 s, want %d", s.sent.Load()-at, n)
		}
	}
}

// end stops the stream and returns how many events it emitted.
func (s *seqStream) end(t testing.TB) int {
	t.Helper()
	close(s.stop)
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	return int(s.sent.Load())
}

// waitLast waits until r has heard the event "last", failing the test
// when r hears no "seq" event for 10 s before that.
func waitLast(t testing.TB, r *routertest.Recorder) {
	t.Helper()
	seq := func() int { return r.Count("seq") }
	if !routertest.WaitProgress(func() bool { return r.Count("last") > 0 }, seq) {
		t.Fatalf("%d events delivered, and none for 10 s", seq())
	}
}

// increasingUpTo waits until r has an event named event whose data is
// last, for as long as events keep coming (none for 10 s fails the
// test), and returns the data of r's events of that name, checking that
// each is above the one before: none out of order, none twice, some
// possibly missing.
func increasingUpTo(t testing.TB, r *routertest.Recorder, event string, last int) []int {
	t.Helper()
	done := func() bool {
		msgs := r.Messages()
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].Event == event {
				var n int
				return msgs[i].Decode(&n) == nil && n == last
			}
		}
		return false
	}
	if count := func() int { return r.Count(event) }; !routertest.WaitProgress(done, count) {
		t.Fatalf("%d events %q delivered, the last not among them, and none for 10 s", count(), event)
	}
	got := dataOf(t, r, event)
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("event %d after %d: out of order or doubled", got[i], got[i-1])
		}
	}
	return got
}

// burst emits events "n" with the data 0 to n-1 from pub, as fast as it
// takes them.
func burst(t testing.TB, pub interface{ Emit(string, any) error }, n int) {
	t.Helper()
	for i := range n {
		if err := pub.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
}
