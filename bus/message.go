package bus

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// Message is one event as a listener receives it.
type Message struct {
	ID      uuid.UUID // unique per event; the network link drops duplicates by it
	Origin  uuid.UUID // node id of the ncserver where the event entered the bus
	Sender  uuid.UUID // id of the client connection that emitted it
	Channel string    // the channel it was emitted on (propagation keeps it)
	Event   string    // the event name
	Data    []byte    // the event's value, one msgpack encoding
	// To is the one client the event is addressed to: a reply goes to the
	// client that asked, and nobody else. Zero for an ordinary event.
	To uuid.UUID
	// InReplyTo is the ID of the request this event answers; zero for an
	// event that answers nothing.
	InReplyTo uuid.UUID
}

// wireMessage is m as the codec takes it: the same memory, no copy.
func (m *Message) wireMessage() *wire.Message { return (*wire.Message)(m) }

// Decode unmarshals the event's data into v, as msgpack.Unmarshal would.
// Struct fields are matched by their msgpack tag, else their json tag,
// else their name.
func (m Message) Decode(v any) error {
	if err := wire.DecodeData(m.Data, v); err != nil {
		return fmt.Errorf("bus: decoding data of event %q: %w", m.Event, err)
	}
	return nil
}

// String renders the message for logs: channel, event and the data as
// Go values.
func (m Message) String() string { return wire.Describe(m.Channel, m.Event, m.Data) }

// RawData is data that is already one msgpack encoding. Emit sends it
// as it is instead of encoding it again.
type RawData = wire.RawData
