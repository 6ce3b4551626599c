package router_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestPropagation emits one event on a channel and checks, for every
// channel, how many times its clients heard it: once where the rule
// leads (and on the channel itself), never elsewhere, never twice.
func TestPropagation(t *testing.T) {
	tests := []struct {
		name     string
		channels string // the "channels" object
		from     string
		want     []string // channels whose clients must hear the event once
	}{
		{
			name:     "all",
			channels: `{"A": {"propagatetochannels": ".*"}, "B": {}, "C": {}}`,
			from:     "A",
			want:     []string{"A", "B", "C"}, // never control
		},
		{
			name:     "false",
			channels: `{"A": {"propagatetochannels": false}, "B": {}}`,
			from:     "A",
			want:     []string{"A"},
		},
		{
			name:     "alternation",
			channels: `{"A": {"propagatetochannels": "B|C"}, "B": {}, "C": {}, "D": {}}`,
			from:     "A",
			want:     []string{"A", "B", "C"},
		},
		{
			name:     "anchored at both ends",
			channels: `{"A": {"propagatetochannels": "B"}, "B": {}, "BB": {}, "xB": {}}`,
			from:     "A",
			want:     []string{"A", "B"},
		},
		{
			name:     "prefix",
			channels: `{"A": {"propagatetochannels": "B.*"}, "B": {}, "BB": {}, "xB": {}}`,
			from:     "A",
			want:     []string{"A", "B", "BB"},
		},
		{
			name:     "rule that matches no channel",
			channels: `{"A": {"propagatetochannels": "nothing|none"}, "B": {}}`,
			from:     "A",
			want:     []string{"A"},
		},
		{
			name:     "rule naming its own channel",
			channels: `{"A": {"propagatetochannels": "A|B"}, "B": {}}`,
			from:     "A",
			want:     []string{"A", "B"},
		},
		{
			name:     "one hop only",
			channels: `{"A": {"propagatetochannels": "B"}, "B": {"propagatetochannels": "C"}, "C": {}}`,
			from:     "A",
			want:     []string{"A", "B"},
		},
		{
			name:     "both directions",
			channels: `{"A": {"propagatetochannels": ".*"}, "B": {"propagatetochannels": ".*"}}`,
			from:     "B",
			want:     []string{"A", "B"},
		},
		{
			name:     "control never propagates",
			channels: `{"control": {"propagatetochannels": ".*"}, "A": {}}`,
			from:     "control",
			want:     []string{"control"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := routertest.NewServer(t, `"channels": `+tt.channels)
			var names []string
			for _, ci := range ts.Channels() {
				names = append(names, ci.Name)
			}
			watchers := map[string]*routertest.Recorder{}
			for _, name := range names {
				watchers[name] = routertest.Record(t, ts.Dial(t, name, bus.Name("watch-"+name)), ".*")
			}
			emitter := ts.Dial(t, tt.from, bus.Name("emitter"))
			self := routertest.Record(t, emitter, ".*")
			if err := emitter.Emit("e", "payload"); err != nil {
				t.Fatal(err)
			}
			// "sync" follows "e" on the same connection: once a client of
			// the same channel has it, "e" is queued for every receiver.
			if err := emitter.Emit("sync", nil); err != nil {
				t.Fatal(err)
			}
			watchers[tt.from].WaitCount(t, "sync", 1)
			for _, name := range names {
				routertest.Fence(t, ts, name, watchers[name])
			}
			routertest.Fence(t, ts, tt.from, self)

			var got []string
			for _, name := range names {
				switch n := watchers[name].Count("e"); n {
				case 0:
				case 1:
					got = append(got, name)
				default:
					t.Errorf("channel %s heard the event %d times", name, n)
				}
			}
			sort.Strings(got)
			if g, w := strings.Join(got, ","), strings.Join(tt.want, ","); g != w {
				t.Errorf("channels that heard the event (-want +got):\n-%s\n+%s", w, g)
			}
			// The emitter hears its own event once, from itself: the
			// server does not echo it back over the socket.
			if n := self.Count("e"); n != 1 {
				t.Errorf("emitter heard its own event %d times, want 1 (its own listener, no echo)", n)
			}
			msgs := watchers[tt.from].Messages()
			if msgs[0].Channel != tt.from || msgs[0].Sender != emitter.ID() || msgs[0].Origin != ts.Node() {
				t.Errorf("message fields: channel %q sender %v origin %v; want %q %v %v",
					msgs[0].Channel, msgs[0].Sender, msgs[0].Origin, tt.from, emitter.ID(), ts.Node())
			}
			var s string
			if err := msgs[0].Decode(&s); err != nil || s != "payload" {
				t.Errorf("data: %q, %v; want \"payload\"", s, err)
			}
		})
	}
}

// TestOrder sends 100,000 events from one client and checks that a client
// on the same channel and one on a propagated channel get every one of
// them, in order.
func TestOrder(t *testing.T) {
	const n = 100_000
	// The publisher does not wait for the subscribers: a roomy maxpending
	// keeps a subscriber that the machine's load holds back from being
	// dropped as a slow consumer, which is not what this test is about.
	ts := routertest.NewServer(t, `"maxpending": 268435456, "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	type seen struct {
		mu   sync.Mutex
		next int
		bad  string
		done chan struct{}
	}
	listen := func(channel string) *seen {
		s := &seen{done: make(chan struct{})}
		c := ts.Dial(t, channel)
		c.On("seq", func(m bus.Message) {
			var i int
			if err := m.Decode(&i); err != nil {
				t.Error(err)
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if i != s.next && s.bad == "" {
				s.bad = fmt.Sprintf("got %d after %d", i, s.next-1)
			}
			s.next = i + 1
			if i == n-1 {
				close(s.done)
			}
		})
		return s
	}
	same, other := listen("A"), listen("B")
	pub := ts.Dial(t, "A")
	for i := range n {
		if err := pub.Emit("seq", i); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*seen{"A": same, "B": other} {
		routertest.WaitFor(t, "the last event on "+name, func() bool {
			select {
			case <-s.done:
				return true
			default:
				return false
			}
		})
		s.mu.Lock()
		if s.bad != "" {
			t.Errorf("channel %s: out of order: %s", name, s.bad)
		}
		s.mu.Unlock()
	}
	for _, ci := range ts.Channels() {
		if ci.Stats.SlowConsumers != 0 || ci.Stats.Dropped != 0 {
			t.Errorf("channel %s: %d slow consumers, %d frames dropped", ci.Name, ci.Stats.SlowConsumers, ci.Stats.Dropped)
		}
	}
}

// TestManyClients runs several publishers and subscribers on several
// channels at once (run it with -race) and checks that every subscriber
// gets every publisher's events, each publisher's in order.
func TestManyClients(t *testing.T) {
	const pubsPerChannel, subsPerChannel, perPub = 3, 3, 2000
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": "B"}, "B": {"propagatetochannels": "A"}, "C": {}}`)
	channels := []string{"A", "B", "C"}
	// Who hears whom: A and B hear each other; C only itself.
	hears := map[string][]string{"A": {"A", "B"}, "B": {"A", "B"}, "C": {"C"}}

	type sub struct {
		channel string
		mu      sync.Mutex
		next    map[string]int // publisher name -> next expected sequence number
		errs    []string
	}
	var subs []*sub
	for _, ch := range channels {
		for range subsPerChannel {
			s := &sub{channel: ch, next: map[string]int{}}
			subs = append(subs, s)
			ts.Dial(t, ch).On("ev", func(m bus.Message) {
				var v struct {
					Pub string `json:"pub"`
					Seq int    `json:"seq"`
				}
				if err := m.Decode(&v); err != nil {
					t.Error(err)
					return
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				if want := s.next[v.Pub]; v.Seq != want {
					s.errs = append(s.errs, fmt.Sprintf("from %s: got %d, want %d", v.Pub, v.Seq, want))
				}
				s.next[v.Pub] = v.Seq + 1
			})
		}
	}
	var wg sync.WaitGroup
	for _, ch := range channels {
		for p := range pubsPerChannel {
			name := fmt.Sprintf("%s%d", ch, p)
			c := ts.Dial(t, ch, bus.Name(name))
			wg.Go(func() {
				for i := range perPub {
					if err := c.Emit("ev", map[string]any{"pub": name, "seq": i}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, s := range subs {
		routertest.WaitFor(t, "every event at a subscriber of "+s.channel, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, from := range hears[s.channel] {
				for p := range pubsPerChannel {
					if s.next[fmt.Sprintf("%s%d", from, p)] != perPub {
						return false
					}
				}
			}
			return true
		})
		s.mu.Lock()
		if len(s.next) != pubsPerChannel*len(hears[s.channel]) {
			t.Errorf("subscriber on %s heard %d publishers, want %d", s.channel, len(s.next), pubsPerChannel*len(hears[s.channel]))
		}
		for _, e := range s.errs {
			t.Errorf("subscriber on %s: %s", s.channel, e)
		}
		s.mu.Unlock()
	}
}

// TestDumpToConsole checks that a channel with dumptoconsole logs each
// event with its data, and one without does not.
func TestDumpToConsole(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"dumptoconsole": true}, "B": {}}`)
	for _, ch := range []string{"A", "B"} {
		sub := routertest.Record(t, ts.Dial(t, ch), ".*")
		ts.Dial(t, ch).Emit("dumped-"+ch, map[string]any{"temp": 21.5})
		sub.WaitCount(t, "dumped-"+ch, 1)
	}
	logs := ts.Logs.String()
	if !strings.Contains(logs, "event=dumped-A") || !strings.Contains(logs, "temp:21.5") {
		t.Errorf("channel A's event is not in the log with its data:\n%s", logs)
	}
	if strings.Contains(logs, "event=dumped-B") {
		t.Error("channel B's event was logged, but B has no dumptoconsole")
	}
}
