package router_test

import (
	"fmt"
	"testing"

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
