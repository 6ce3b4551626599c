package bus

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"
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

// Decode unmarshals the event's data into v, as msgpack.Unmarshal would.
// Struct fields are matched by their msgpack tag, else their json tag,
// else their name.
func (m Message) Decode(v any) error {
	d := decoderPool.Get().(*msgpack.Decoder)
	defer decoderPool.Put(d)
	d.ResetReader(bytes.NewReader(m.Data))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("bus: decoding data of event %q: %w", m.Event, err)
	}
	return nil
}

// String renders the message for logs: channel, event and the data as
// Go values.
func (m Message) String() string {
	var v any
	if err := m.Decode(&v); err != nil {
		return fmt.Sprintf("%s/%s <%d bytes: %v>", m.Channel, m.Event, len(m.Data), err)
	}
	return fmt.Sprintf("%s/%s %v", m.Channel, m.Event, v)
}

var decoderPool = sync.Pool{New: func() any {
	d := msgpack.NewDecoder(nil)
	d.SetCustomStructTag("json")
	return d
}}

var encoderPool = sync.Pool{New: func() any {
	e := &dataEncoder{}
	e.enc = msgpack.NewEncoder(e)
	e.enc.SetCustomStructTag("json")
	e.enc.UseCompactInts(true)
	return e
}}

// dataEncoder appends the msgpack encoding of a value to a byte slice.
type dataEncoder struct {
	enc *msgpack.Encoder
	buf []byte
}

func (e *dataEncoder) Write(p []byte) (int, error) {
	e.buf = append(e.buf, p...)
	return len(p), nil
}

// RawData is data that is already one msgpack encoding. Emit sends it
// as it is instead of encoding it again.
type RawData []byte

// AppendData appends the msgpack encoding of v to dst. A RawData value is
// appended as it is; nil is encoded as msgpack nil.
func AppendData(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, 0xc0), nil
	case RawData:
		r := reader{b: v}
		if r.skipValue("data"); r.err != nil || r.off != len(v) {
			return dst, fmt.Errorf("bus: RawData is not exactly one msgpack value")
		}
		return append(dst, v...), nil
	}
	e := encoderPool.Get().(*dataEncoder)
	e.buf = dst
	err := e.enc.Encode(v)
	out := e.buf
	e.buf = nil
	encoderPool.Put(e)
	if err != nil {
		return dst[:len(dst):len(dst)], fmt.Errorf("bus: encoding data: %w", err)
	}
	return out, nil
}
