package natslink

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/seeds"
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
		{"zero id and sender", msg("p.K.A", map[string]string{HeaderEvent: "e", HeaderID: uuid.Nil.String(), HeaderSender: uuid.Nil.String()}), false, true},
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

// FuzzDecode reads messages as a plain NATS program may send them:
// a subject, then a header block (seeds in testdata/fuzz/natsmsg). It
// never panics; an event it accepts has a name, a channel, an id and a
// sender (never the zero one), is a reply exactly on a node's subject,
// carries the ids its headers give (but the zero id and sender, made up
// as missing ones are, and the request answered by an event that is
// not a reply), and reads back the same from the headers the link
// writes for it (setHeaders, as Publish does).
func FuzzDecode(f *testing.F) {
	for _, b := range seeds.Load(f, "../testdata/fuzz/natsmsg") {
		f.Add(b.Data)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		subject, block, _ := bytes.Cut(in, []byte("\n"))
		h, err := nats.DecodeHeadersMsg(block)
		if err != nil {
			return
		}
		m := &nats.Msg{Subject: string(subject), Header: h, Data: []byte{0xc0}}
		node := strings.HasPrefix(m.Subject, "p.$node.")
		var ev Event
		if !decode(&ev, m, "p.K.", node) {
			return
		}
		if ev.Event == "" || ev.Channel == "" || ev.ID == uuid.Nil || ev.Sender == uuid.Nil || node != (ev.To != uuid.Nil) {
			t.Fatalf("accepted %+v (node subject %v)", ev, node)
		}
		for name, id := range map[string]uuid.UUID{HeaderID: ev.ID, HeaderOrigin: ev.Origin, HeaderSender: ev.Sender, HeaderTo: ev.To, HeaderRe: ev.Re} {
			s := h.Get(name)
			if s == "" {
				continue
			}
			made := name == HeaderID || name == HeaderSender
			want := uuid.MustParse(s)
			if name == HeaderRe && ev.To == uuid.Nil {
				want = uuid.Nil // not a reply: it answers nothing
			}
			if want != id && !(made && want == uuid.Nil) {
				t.Fatalf("%s %q read as %v", name, s, id)
			}
		}
		back := nats.NewMsg(m.Subject)
		back.Data = m.Data
		if setHeaders(back.Header, &ev, ev.Origin.String(), ev.Sender.String()) != node {
			t.Fatalf("%+v: written as a reply %v, on a node subject %v", ev, !node, node)
		}
		var again Event
		if !decode(&again, back, "p.K.", node) || again.Event != ev.Event || again.Channel != ev.Channel ||
			again.ID != ev.ID || again.Origin != ev.Origin || again.Sender != ev.Sender || again.To != ev.To || again.Re != ev.Re {
			t.Fatalf("%+v read back as %+v", ev, again)
		}
	})
}
