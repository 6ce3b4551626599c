package channel_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
)

// rawClient is a client of the framed protocol on a real socket, which
// reads only when a test tells it to.
type rawClient struct {
	nc net.Conn
	id uuid.UUID
	fr *wire.FrameReader
	w  wire.Welcome
}

// rawDial connects to ch without saying anything.
func rawDial(t *testing.T, ch *channel.Channel) net.Conn {
	t.Helper()
	nc, err := net.Dial("unix", ch.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// rawHelloOn sends h on nc, but for its first skip bytes (sent
// already), and reads the Welcome. Version, ClientID and Name are filled
// in when zero.
func rawHelloOn(t *testing.T, nc net.Conn, h wire.Hello, skip int) *rawClient {
	t.Helper()
	if h.Version == 0 {
		h.Version = wire.ProtocolVersion
	}
	if h.ClientID == [16]byte{} {
		h.ClientID = uuid.New()
	}
	if h.Name == "" {
		h.Name = "raw"
	}
	if _, err := nc.Write(wire.AppendHello(nil, &h)[skip:]); err != nil {
		t.Fatal(err)
	}
	r := &rawClient{nc: nc, id: h.ClientID, fr: wire.NewFrameReader(bufio.NewReader(nc), 0)}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := r.fr.ReadFrame()
	if err != nil {
		t.Fatalf("welcome: %v", err)
	}
	w, err := wire.DecodeWelcome(f[wire.HeaderLen:])
	if err != nil {
		t.Fatalf("welcome: %v", err)
	}
	r.w = w
	return r
}

// rawHelloTo connects to ch and says h.
func rawHelloTo(t *testing.T, ch *channel.Channel, h wire.Hello) *rawClient {
	return rawHelloOn(t, rawDial(t, ch), h, 0)
}

// event makes an event frame from the client.
func (r *rawClient) event(node uuid.UUID, chName, name string, data []byte) ([]byte, uuid.UUID) {
	id := uuid.New()
	return wire.AppendEvent(nil, &wire.Message{ID: id, Origin: node, Sender: r.id, Channel: chName, Event: name, Data: data}), id
}

// next reads the next frame, waiting d at most; it returns the frame
// type and body.
func (r *rawClient) next(d time.Duration) (wire.FrameType, []byte, error) {
	r.nc.SetReadDeadline(time.Now().Add(d))
	f, err := r.fr.ReadFrame()
	if err != nil {
		return 0, nil, err
	}
	body := f[wire.HeaderLen:]
	ty, err := wire.TypeOf(body)
	return ty, body, err
}

// readEvents reads until nothing comes for d, or the connection ends, and
// returns how many events it read and the code of the Error frame, if
// one came.
func (r *rawClient) readEvents(d time.Duration) (events int, code wire.ErrorCode) {
	for {
		ty, body, err := r.next(d)
		if err != nil {
			return events, code
		}
		switch ty {
		case wire.FrameEvent:
			events++
		case wire.FrameError:
			if e, err := wire.DecodeError(body); err == nil {
				code = e.Code
			}
		}
	}
}
