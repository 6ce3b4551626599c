package channel_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// otherUID is a uid that runs none of this test's processes.
const otherUID = 4242

func principals(t *testing.T, entries ...string) *channel.Principals {
	t.Helper()
	p, err := channel.ParsePrincipals(entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dialErr dials ch once, without reconnecting, and returns the error.
func dialErr(t *testing.T, ch *channel.Channel) (*bus.Client, error) {
	t.Helper()
	c, err := bus.Dial(context.Background(), ch.Name(), bus.Socket(ch.Path()), bus.Reconnect(false), bus.Timeout(20*time.Second))
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// wantCode checks that err is an error frame with code.
func wantCode(t *testing.T, what string, err error, code bus.ErrorCode) {
	t.Helper()
	var se *bus.ServerError
	if !errors.As(err, &se) || se.Code != code {
		t.Errorf("%s: %v, want an error frame with code %d (%v)", what, err, code, code)
	}
}

// TestAllow checks the allow list against this process's own
// credentials: a list without them refuses it with an error frame that
// says why, and counts it; its uid, user name, group id or group name
// lets it in.
func TestAllow(t *testing.T) {
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	me, err := user.Current()
	if err != nil {
		t.Skipf("this system does not name the current user: %v", err)
	}
	admitted := []string{uid, "user:" + uid, me.Username, "user:" + me.Username, "group:" + gid}
	if g, err := user.LookupGroupId(gid); err == nil {
		admitted = append(admitted, "group:"+g.Name)
	}
	for _, entry := range admitted {
		t.Run("admits "+entry, func(t *testing.T) {
			ch := listen(t, channel.Config{Name: "A", Node: uuid.New(),
				Access: channel.Access{Allow: principals(t, strconv.Itoa(otherUID), entry)}})
			if _, err := dialErr(t, ch); err != nil {
				t.Fatalf("allow [%d %s]: %v", otherUID, entry, err)
			}
			if n := ch.Stats().RefusedAllow; n != 0 {
				t.Errorf("RefusedAllow = %d, want 0", n)
			}
		})
	}
	t.Run("refuses", func(t *testing.T) {
		ch := listen(t, channel.Config{Name: "A", Node: uuid.New(),
			Access: channel.Access{Allow: principals(t, strconv.Itoa(otherUID), "group:"+strconv.Itoa(otherUID))}})
		_, err := dialErr(t, ch)
		wantCode(t, "a client the allow list lacks", err, bus.CodeForbidden)
		if err == nil || !strings.Contains(err.Error(), "uid "+uid+" ") {
			t.Errorf("the refusal %q does not name uid %s", err, uid)
		}
		if n := ch.Stats().RefusedAllow; n != 1 {
			t.Errorf("RefusedAllow = %d, want 1", n)
		}
		if n := ch.Stats().Clients; n != 0 {
			t.Errorf("%d clients after the refusal, want 0", n)
		}
	})
}

// TestAllowJSON checks that a client of the JSON text protocol that the
// allow list refuses hears why in an nc-error message, whether it
// speaks first or stays silent as a listener.
func TestAllowJSON(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New(),
		Access: channel.Access{Allow: principals(t, strconv.Itoa(otherUID))}})
	for _, first := range []string{"", `{"event":"e","data":1}` + "\x00"} {
		nc, err := net.Dial("unix", ch.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if first != "" {
			nc.Write([]byte(first))
		}
		nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		text, err := bufio.NewReader(nc).ReadString(0)
		if err != nil || !strings.Contains(text, `"nc-error"`) || !strings.Contains(text, `"code":9`) {
			t.Errorf("JSON client (first words %q) heard %q, %v; want nc-error with code 9", first, text, err)
		}
	}
}

// TestMaxClients checks both limits: the client over one is refused with
// code 10 and counted, and a place that frees up is taken again.
func TestMaxClients(t *testing.T) {
	for _, tc := range []struct {
		name   string
		access channel.Access
		key    string
	}{
		{"channel", channel.Access{MaxClients: 2}, "maxclients"},
		{"uid", channel.Access{MaxClientsPerUID: 2}, "maxclientsperuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := listen(t, channel.Config{Name: "A", Node: uuid.New(), Access: tc.access})
			first, err := dialErr(t, ch)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dialErr(t, ch); err != nil {
				t.Fatal(err)
			}
			_, err = dialErr(t, ch)
			wantCode(t, "a third client", err, bus.CodeTooManyClients)
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("the refusal %q does not name %s", err, tc.key)
			}
			if n := ch.Stats().RefusedLimit; n != 1 {
				t.Errorf("RefusedLimit = %d, want 1", n)
			}
			first.Close()
			routertest.WaitFor(t, "the first client to leave", func() bool { return ch.Stats().Clients == 1 })
			if _, err := dialErr(t, ch); err != nil {
				t.Errorf("a client after one left: %v", err)
			}
		})
	}
}

// TestPublish checks the publish list: a client it lacks connects and
// hears events, but is dropped with code 9 when it emits, and its event
// reaches nobody.
func TestPublish(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New(),
		Access: channel.Access{Publish: principals(t, strconv.Itoa(otherUID))}})
	var heard atomic.Int32
	listener := dial(t, ch, "listener")
	listener.On("e", func(bus.Message) { heard.Add(1) })
	listener.Flush(context.Background())
	drops := make(chan error, 1)
	talker, err := bus.Dial(context.Background(), "A", bus.Socket(ch.Path()), bus.Reconnect(false),
		bus.OnDisconnect(func(err error) { drops <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	talker.Emit("e", 1)
	select {
	case err := <-drops:
		wantCode(t, "a client that may not publish, after an emit", err, bus.CodeForbidden)
	case <-time.After(30 * time.Second):
		t.Fatal("the client that may not publish was not dropped")
	}
	if n := ch.Stats().RefusedPublish; n != 1 {
		t.Errorf("RefusedPublish = %d, want 1", n)
	}
	if n := ch.Stats().EventsIn; n != 0 {
		t.Errorf("EventsIn = %d, want 0: the event must not be routed", n)
	}
	if heard.Load() != 0 {
		t.Error("the listener heard an event from a client that may not publish")
	}
}

// TestSetAccess checks that a connected client that a new allow list
// does not admit is dropped with code 9.
func TestSetAccess(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New()})
	drops := make(chan error, 1)
	c, err := bus.Dial(context.Background(), "A", bus.Socket(ch.Path()), bus.Reconnect(false),
		bus.OnDisconnect(func(err error) { drops <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	routertest.WaitFor(t, "the client to join", func() bool { return ch.Stats().Clients == 1 })
	ch.SetAccess(channel.Access{Allow: principals(t, strconv.Itoa(otherUID))})
	select {
	case err := <-drops:
		wantCode(t, "a client no longer allowed", err, bus.CodeForbidden)
	case <-time.After(30 * time.Second):
		t.Fatal("the client no longer allowed is still connected")
	}
}

func TestParsePrincipals(t *testing.T) {
	for _, bad := range []string{"", "user:", "group:", "role:x", "no-such-user-here", "group:no-such-group-here"} {
		if _, err := channel.ParsePrincipals([]string{bad}); err == nil {
			t.Errorf("ParsePrincipals(%q) = nil error", bad)
		}
	}
	p := principals(t, "4242", "group:4243")
	for _, tc := range []struct {
		cr   channel.Cred
		want bool
	}{
		{channel.Cred{UID: 4242, GID: 1}, true},
		{channel.Cred{UID: 1, GID: 4243}, true},
		{channel.Cred{UID: 1, GID: 1, Groups: []int{7, 4243}}, true},
		{channel.Cred{UID: 4243, GID: 4242}, false},
	} {
		if got := p.Admits(tc.cr); got != tc.want {
			t.Errorf("Admits(%+v) = %v, want %v", tc.cr, got, tc.want)
		}
	}
	if !(*channel.Principals)(nil).Admits(channel.Cred{}) {
		t.Error("a nil list must admit everyone")
	}
}

// checkErrorFrame reads one frame from nc and checks that it is an error
// frame with code.
func checkErrorFrame(t *testing.T, nc net.Conn, code wire.ErrorCode) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	frame, err := wire.NewFrameReader(bufio.NewReader(nc), 0).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	e, err := wire.DecodeError(frame[wire.HeaderLen:])
	if err != nil || e.Code != code {
		t.Errorf("frame %x: %+v, %v; want an error frame with code %d", frame, e, err, code)
	}
}

// TestRefusedRawHello checks the refusal as a client library sees it on
// the wire: its hello is read, then one error frame comes.
func TestRefusedRawHello(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New(), Access: channel.Access{MaxClients: 1}})
	routertest.StartChild(t, ch.Path(), "A", "holder", 0)
	routertest.WaitFor(t, "the first client", func() bool { return ch.Stats().Clients == 1 })
	nc, err := net.Dial("unix", ch.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, ClientID: uuid.New(), Name: "raw"}))
	checkErrorFrame(t, nc, wire.CodeTooManyClients)
}
