package wire

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"
)

// Message is one event as the codec sees it. Message has the same
// fields in the same order, so the client converts between the two
// without a copy; the compiler holds the two to each other.
type Message struct {
	ID        uuid.UUID // unique per event
	Origin    uuid.UUID // node id of the ncserver where the event entered the bus
	Sender    uuid.UUID // id of the client connection that emitted it
	Channel   string    // the channel it was emitted on
	Event     string    // the event name
	Data      []byte    // the event's value, one msgpack encoding
	To        uuid.UUID // the one client it is addressed to; zero for all
	InReplyTo uuid.UUID // the request it answers; zero for none
}

// RawData is data that is already one msgpack encoding. AppendData
// appends it as it is instead of encoding it again.
type RawData []byte

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

// AppendData appends the msgpack encoding of v to dst. A RawData value is
// appended as it is; nil is encoded as msgpack nil. Struct fields are
// named by their json tag.
func AppendData(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, 0xc0), nil
	case RawData:
		if hdr, n, ok := blobHead(v); ok && uint64(hdr)+n == uint64(len(v)) {
			return append(dst, v...), nil // a bin or a str, read at a glance
		}
		r := reader{b: v}
		if r.skipValue("data"); r.err != nil || r.off != len(v) {
			return dst, fmt.Errorf("RawData is not exactly one msgpack value")
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
		return dst[:len(dst):len(dst)], fmt.Errorf("encoding data: %w", err)
	}
	return out, nil
}

var decoderPool = sync.Pool{New: func() any {
	d := msgpack.NewDecoder(nil)
	d.SetCustomStructTag("json")
	return d
}}

// DecodeData unmarshals an event's data into v, as msgpack.Unmarshal
// would. Struct fields are matched by their msgpack tag, else their json
// tag, else their name.
func DecodeData(data []byte, v any) error {
	d := decoderPool.Get().(*msgpack.Decoder)
	defer decoderPool.Put(d)
	d.ResetReader(bytes.NewReader(data))
	return d.Decode(v)
}

// Describe renders an event for logs: channel, event and the data as Go
// values.
func Describe(channel, event string, data []byte) string {
	var v any
	if err := DecodeData(data, &v); err != nil {
		return fmt.Sprintf("%s/%s <%d bytes: %v>", channel, event, len(data), err)
	}
	return fmt.Sprintf("%s/%s %v", channel, event, v)
}
