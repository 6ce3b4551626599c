package natslink

import (
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

func TestSubjects(t *testing.T) {
	node := uuid.MustParse("6e6f6465-0000-4000-8000-000000000001")
	tests := []struct{ name, got, want string }{
		{"channel", Subject("netcluster", "plant", "A.b"), "netcluster.plant.A.b"},
		{"cluster \"\"", Subject("p.q", "", "A"), "p.q.default.A"},
		{"node", NodeSubject("netcluster", "", node), "netcluster.$node.default.6e6f6465-0000-4000-8000-000000000001"},
		{"heartbeats", hbSubject("netcluster", "lab"), "netcluster.$hb.lab"},
		{"stream", StreamName("p.q", "lab"), "p_q_lab"},
		{"redacted URL", redactURL("nats://u:p@a:4222,tls://b:1"), "nats://(redacted)@a:4222,tls://b:1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	for s, want := range map[string]bool{"a": true, "a.b": true, "a..b": false, "": false, "a.*": false, "a.>": false, "a b": false, ".a": false} {
		if ValidSubject(s) != want {
			t.Errorf("ValidSubject(%q) = %v", s, !want)
		}
	}
}

// TestDecode: what a message must carry to be an event, on a channel's
// subject and on a node's.
func TestDecode(t *testing.T) {
	id := uuid.New()
	msg := func(subject string, h map[string]string) *nats.Msg {
		m := nats.NewMsg(subject)
		for k, v := range h {
			m.Header.Set(k, v)
		}
		m.Data = []byte{0xc0}
		return m
	}
	tests := []struct {
		name string
		m    *nats.Msg
		node bool
		ok   bool
	}{
		{"event name alone", msg("p.K.A", map[string]string{HeaderEvent: "e"}), false, true},
		{"no event name", msg("p.K.A", nil), false, false},
		{"bad id", msg("p.K.A", map[string]string{HeaderEvent: "e", HeaderID: "x"}), false, false},
		{"addressed on a channel", msg("p.K.A", map[string]string{HeaderEvent: "e", HeaderTo: id.String()}), false, false},
		{"reply on a node", msg("p.$node.K.x", map[string]string{HeaderEvent: "e", HeaderTo: id.String(), HeaderChannel: "A"}), true, true},
		{"not a reply on a node", msg("p.$node.K.x", map[string]string{HeaderEvent: "e", HeaderChannel: "A"}), true, false},
		{"reply without its channel", msg("p.$node.K.x", map[string]string{HeaderEvent: "e", HeaderTo: id.String()}), true, false},
	}
	for _, tt := range tests {
		var ev Event
		ok := decode(&ev, tt.m, "p.K.", tt.node)
		if ok != tt.ok {
			t.Errorf("%s: ok %v, want %v (%+v)", tt.name, ok, tt.ok, ev)
		}
		if ok && (ev.ID == uuid.Nil || ev.Sender == uuid.Nil || ev.Channel != "A") {
			t.Errorf("%s: %+v: want an id and a sender made up, channel A", tt.name, ev)
		}
	}
}
