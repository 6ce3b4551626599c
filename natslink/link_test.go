package natslink

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startNATS starts a NATS server in process on a free loopback port,
// with its options changed by mods, shut down when the test ends.
func startNATS(t *testing.T, mods ...func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	for _, f := range mods {
		f(o)
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// bothFormats runs f as two subtests, for the link's two formats: one
// event a message (pack false), and packs (pack true).
func bothFormats(t *testing.T, f func(t *testing.T, pack bool)) {
	t.Run("pack false", func(t *testing.T) { f(t, false) })
	t.Run("pack true", func(t *testing.T) { f(t, true) })
}

// waitFor fails the test unless cond becomes true within 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestLink: two links on one NATS server; what one publishes on a
// channel the other delivers, never its own; a reply goes to its node;
// each sees the other as a peer; Close leaves nothing running.
func TestLink(t *testing.T) {
	ns := startNATS(t)

	var mu sync.Mutex
	got := map[uuid.UUID][]Event{}
	open := func(node uuid.UUID) *Link {
		l, err := Open(Config{URL: ns.ClientURL(), Node: node, Heartbeat: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
			func(ev *Event) {
				mu.Lock()
				defer mu.Unlock()
				e := *ev
				e.Data = append([]byte(nil), ev.Data...)
				got[node] = append(got[node], e)
			})
		if err != nil {
			t.Fatal(err)
		}
		l.SetChannels([]string{"A"})
		return l
	}
	n1, n2 := uuid.New(), uuid.New()
	l1, l2 := open(n1), open(n2)
	defer l1.Close()
	defer l2.Close()
	count := func(node uuid.UUID) int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[node])
	}

	ev := &Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: n1, Sender: uuid.New(), Data: []byte{0x01}}
	if err := l1.Publish(ev, uuid.Nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event", func() bool { return count(n2) == 1 })
	reply := &Event{Channel: "B", Event: "e-response", ID: uuid.New(), Origin: n2, Sender: uuid.New(), To: ev.Sender, Re: ev.ID, Data: []byte{0x02}}
	if err := l2.Publish(reply, n1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reply", func() bool { return count(n1) == 1 })
	mu.Lock()
	if g := got[n2][0]; g.ID != ev.ID || g.Origin != n1 || g.Sender != ev.Sender || g.Event != "e" || g.Channel != "A" || g.Data[0] != 1 {
		t.Errorf("delivered %+v, sent %+v", g, ev)
	}
	if g := got[n1][0]; g.To != reply.To || g.Re != ev.ID || g.Channel != "B" {
		t.Errorf("reply delivered %+v, sent %+v", g, reply)
	}
	mu.Unlock()
	waitFor(t, "the peers", func() bool {
		p1, p2 := l1.Peers(), l2.Peers()
		return len(p1) == 1 && p1[0].Node == n2 && len(p2) == 1 && p2[0].Node == n1
	})
	if st := l1.Stats(); !st.Connected || st.EventsOut != 1 || st.EventsIn != 1 {
		t.Errorf("stats %+v", st)
	}
	if count(n1) != 1 || count(n2) != 1 {
		t.Errorf("a link delivered its own event: %d, %d", count(n1), count(n2))
	}
}

// TestCloseQuiet: closing a connected link logs no lost connection.
// nats.go tells the link its connection went when Close closes it too;
// the link said it was reconnecting, and that events waited, on every
// reload that swapped it and at every shutdown.
func TestCloseQuiet(t *testing.T) {
	ns := startNATS(t)
	log := &syncBuffer{}
	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), Logger: slog.New(slog.NewTextHandler(log, nil))}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection", func() bool { return l.Stats().Connected })
	l.Close()
	if out := log.String(); !strings.Contains(out, "connected to NATS") || strings.Contains(out, "disconnected") {
		t.Errorf("closing the link logged a lost connection, or the test heard nothing:\n%s", out)
	}
}
