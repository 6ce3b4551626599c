package channel_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestClientsComeAndGo connects clients, drops most of them in an order
// that exercises the client list's in-place appends and its rebuilds,
// and checks that the list and the fan-out agree with who is connected.
func TestClientsComeAndGo(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A"})
	const n = 40
	clients := make([]*bus.Client, n)
	recs := make([]*routertest.Recorder, n)
	for i := range clients {
		clients[i] = dial(t, ch, fmt.Sprintf("c%02d", i))
		recs[i] = routertest.Record(t, clients[i], "hello")
	}
	// Close all but every fifth, from both ends inward, then connect a
	// few more.
	left := map[int]bool{}
	for i := range n {
		j := i / 2 // 0, n-1, 1, n-2, ...
		if i%2 == 1 {
			j = n - 1 - i/2
		}
		if j%5 == 0 {
			left[j] = true
			continue
		}
		clients[j].Close()
	}
	for i := range 3 {
		c := dial(t, ch, fmt.Sprintf("late%d", i))
		clients = append(clients, c)
		recs = append(recs, routertest.Record(t, c, "hello"))
		left[n+i] = true
	}
	var want []string
	for i := range left {
		want = append(want, clientName(i))
	}
	sort.Strings(want)
	routertest.WaitFor(t, "the closed clients to leave", func() bool { return len(ch.ClientInfos()) == len(left) })
	var got []string
	for _, ci := range ch.ClientInfos() {
		got = append(got, ci.Name)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("clients (-want +got):\n-%v\n+%v", want, got)
	}
	sender := dial(t, ch, "sender")
	if err := sender.Emit("hello", nil); err != nil {
		t.Fatal(err)
	}
	for i := range left {
		recs[i].WaitCount(t, "hello", 1)
	}
	if st := ch.Stats(); st.Clients != len(left)+1 || st.FramesOut != uint64(len(left)) {
		t.Errorf("stats: %d clients, %d frames out; want %d, %d", st.Clients, st.FramesOut, len(left)+1, len(left))
	}
}

func clientName(i int) string {
	if i >= 40 {
		return fmt.Sprintf("late%d", i-40)
	}
	return fmt.Sprintf("c%02d", i)
}
