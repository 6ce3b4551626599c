package channel

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

func namedEvent(name string, to uuid.UUID) *Event {
	e := NewEvent(wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Channel: "A", Event: name, To: to}))
	return &e
}

// TestAudience: an audience holds the clients whose filters take the
// name; it is made again when a filter is swapped or the list changes;
// addressed events take the per-client path.
func TestAudience(t *testing.T) {
	ch := &Channel{}
	x, err := compileInterest([]string{"x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	all, onlyX, none := &Conn{ch: ch}, &Conn{ch: ch}, &Conn{ch: ch}
	onlyX.interest.Store(x)
	none.interest.Store(&filter{})
	list := []*Conn{all, onlyX, none}
	ch.receivers.Store(&list)
	takers := func(name string) []*Conn {
		a := ch.audienceOf(namedEvent(name, uuid.Nil))
		if a == nil {
			t.Fatalf("no audience for %s", name)
		}
		if a.skipped+len(a.conns) != len(*ch.receivers.Load()) {
			t.Errorf("%s: %d skipped and %d taking, of %d clients", name, a.skipped, len(a.conns), len(*ch.receivers.Load()))
		}
		return a.conns
	}
	for range 3 { // made, then looked up
		if got := takers("x"); len(got) != 2 || got[0] != all || got[1] != onlyX {
			t.Errorf("x goes to %v, want all and onlyX", got)
		}
		if got := takers("y"); len(got) != 1 || got[0] != all {
			t.Errorf("y goes to %v, want all", got)
		}
	}
	y, _ := compileInterest([]string{"y"}, nil)
	none.setInterest(y)
	if got := takers("y"); len(got) != 2 || got[1] != none {
		t.Errorf("after a swap, y goes to %v, want all and none", got)
	}
	late := &Conn{ch: ch}
	longer := append(list[:len(list):len(list)], late)
	ch.receivers.Store(&longer)
	if got := takers("x"); len(got) != 3 || got[2] != late {
		t.Errorf("after a client came, x goes to %v, want all, onlyX and the new one", got)
	}
	if a := ch.audienceOf(namedEvent("x", uuid.New())); a != nil {
		t.Error("an addressed event got an audience")
	}
}

// TestAudienceBounded: however many names pass, the audiences hold at
// most maxAudienceSize clients in all, and still say who takes each.
func TestAudienceBounded(t *testing.T) {
	ch := &Channel{}
	list := make([]*Conn, 100)
	for i := range list {
		list[i] = &Conn{ch: ch}
	}
	ch.receivers.Store(&list)
	for i := range 2 * maxAudienceSize / len(list) {
		a := ch.audienceOf(namedEvent(fmt.Sprintf("n%d", i), uuid.Nil))
		if a == nil || len(a.conns) != len(list) {
			t.Fatalf("name %d: audience %v", i, a)
		}
		if as := ch.audiences.Load(); as.size > maxAudienceSize || as.names.len() > maxCachedNames+maxCachedNames/8+1 {
			t.Fatalf("after %d names the audiences hold %d clients and %d names", i+1, as.size, as.names.len())
		}
	}
}

// BenchmarkAudience is the fan-out's cost of finding who takes an
// event, once the name's audience is made: the same whatever the
// number of clients.
func BenchmarkAudience(b *testing.B) {
	ch := &Channel{}
	list := make([]*Conn, 64)
	for i := range list {
		list[i] = &Conn{ch: ch}
		f, _ := compileInterest([]string{fmt.Sprintf("n%d", i)}, nil)
		list[i].interest.Store(f)
	}
	ch.receivers.Store(&list)
	e := namedEvent("n63", uuid.Nil)
	b.ReportAllocs()
	for b.Loop() {
		if a := ch.audienceOf(e); a == nil || len(a.conns) != 1 {
			b.Fatal("wrong audience")
		}
	}
}
