package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNetRequestReply: over multicast, a request answered on another
// server gets its reply; every server hears the reply, and only the
// asker's delivers it, to the asker alone.
func TestNetRequestReply(t *testing.T) {
	port := mcasttest.Port()
	const chans = `"channels": {"A": {"propagatetonet": true}}`
	s1, s2, s3 := netServer(t, port, "replies", chans), netServer(t, port, "replies", chans), netServer(t, port, "replies", chans)
	waitPeers(t, s1, s2, s3)
	askAcross(t, []*routertest.Server{s1, s2, s3}, 5)
	if u := s2.Channels()[0].Stats.Undeliverable; u != 0 {
		t.Errorf("the responder's server counted %d replies undeliverable", u)
	}
}

// askAcross has an asker on servers[0] make n requests that a responder
// on servers[1] answers, with a bystander listening to everything on
// each server. It checks every reply, and that no bystander heard one,
// and returns the bystanders, fenced, for more checks.
func askAcross(t *testing.T, servers []*routertest.Server, n int) []*routertest.Recorder {
	t.Helper()
	responder(t, servers[1].Dial(t, "A", bus.Name("responder")))
	asker := servers[0].Dial(t, "A", bus.Name("asker"))
	var bystanders []*routertest.Recorder
	for _, ts := range servers {
		bystanders = append(bystanders, routertest.Record(t, ts.Dial(t, "A", bus.Name("bystander")), ".*"))
	}
	for i := range n {
		m := request(t, asker, fmt.Sprint(i))
		var got string
		if err := m.Decode(&got); err != nil || got != fmt.Sprint("got ", i) || m.To != asker.ID() {
			t.Errorf("reply %+v: %q, %v", m, got, err)
		}
	}
	for i, r := range bystanders {
		routertest.Fence(t, servers[i], "A", r)
		if c := r.Count("get-response"); c != 0 {
			t.Errorf("a bystander on server %d heard %d replies", i+1, c)
		}
	}
	return bystanders
}

// TestNetReplyUnderLoad: over multicast, a reply reaches its asker
// however many events the servers exchanged between the request and
// the reply: here tens of thousands, more than the ids the servers
// remember.
func TestNetReplyUnderLoad(t *testing.T) {
	port := mcasttest.Port()
	const chans = `"channels": {"A": {"propagatetonet": true}}`
	s1, s2 := netServer(t, port, "replies", chans), netServer(t, port, "replies", chans)
	waitPeers(t, s1, s2)
	replyUnderLoad(t, s1, s2, func() uint64 { return s2.NetStats().Delivered })
}

// replyUnderLoad has an asker on ask make a request that a responder on
// answer replies to only once a client on ask has sent 40,000 more
// events to answer (delivered counts them there), and checks the reply.
func replyUnderLoad(t *testing.T, ask, answer *routertest.Server, delivered func() uint64) {
	t.Helper()
	const between = 40000
	rc := answer.Dial(t, "A", bus.Name("slow responder"))
	asked := make(chan bus.Message, 1)
	if _, err := rc.On("get", func(m bus.Message) { asked <- m }); err != nil {
		t.Fatal(err)
	}
	asker := ask.Dial(t, "A", bus.Name("asker"))
	probe(t, asker, routertest.Record(t, answer.Dial(t, "A"), "probe"))
	stream := streamSeq(ask.Dial(t, "A", bus.Name("load")))
	defer stream.end(t)
	replied := make(chan error, 1)
	go func() {
		select {
		case m := <-asked:
			at := delivered()
			for delivered() < at+between {
				time.Sleep(time.Millisecond)
			}
			replied <- rc.Reply(m, "late")
		case <-time.After(30 * time.Second):
			replied <- fmt.Errorf("the request never came")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := asker.Request(ctx, "get", "x")
	if rerr := <-replied; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("request: %v (the responder's server counted %d undeliverable)", err, answer.Channels()[0].Stats.Undeliverable)
	}
	var got string
	if err := m.Decode(&got); err != nil || got != "late" || m.To != asker.ID() {
		t.Errorf("reply %+v: %q, %v", m, got, err)
	}
}
