package multicast

import (
	"encoding/binary"
	"fmt"
)

// Heartbeat is what a node announces about itself at every heartbeat
// interval. On the wire it is the message of a heartbeat datagram:
//
//	pid       uint32
//	last seq  uint64, the sequence number of the last datagram sent before
//	host      uint8 length, bytes
//	version   uint8 length, bytes
//	channels  uint16 count, then per channel uint8 length, bytes
//	flags     uint8, only when not 0: bit 0 set, the node leaves
//
// Bytes after the flags are for later versions and are ignored.
type Heartbeat struct {
	PID      int
	LastSeq  uint64
	Host     string
	Version  string
	Channels []string
	// Leaving says that the node leaves the cluster: this is its link's
	// last datagram, and no link of the node takes over (Link.Leave).
	Leaving bool
}

// hbLeaving is the flag of a heartbeat whose node leaves.
const hbLeaving = 1

// maxHeartbeatChannels bounds the channels one heartbeat may list.
const maxHeartbeatChannels = 4096

// AppendHeartbeat appends hb's encoding to dst. Strings over 255 bytes are
// cut, and channels past maxHeartbeatChannels are left out.
func AppendHeartbeat(dst []byte, hb *Heartbeat) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(hb.PID))
	dst = binary.BigEndian.AppendUint64(dst, hb.LastSeq)
	dst = appendShort(dst, hb.Host)
	dst = appendShort(dst, hb.Version)
	chans := hb.Channels
	if len(chans) > maxHeartbeatChannels {
		chans = chans[:maxHeartbeatChannels]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(chans)))
	for _, c := range chans {
		dst = appendShort(dst, c)
	}
	if hb.Leaving {
		dst = append(dst, hbLeaving)
	}
	return dst
}

func appendShort(dst []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return append(append(dst, byte(len(s))), s...)
}

// ParseHeartbeat decodes a heartbeat message.
func ParseHeartbeat(b []byte) (Heartbeat, error) {
	var hb Heartbeat
	d := hbDecoder{b: b}
	hb.PID = int(binary.BigEndian.Uint32(d.next(4, "pid")))
	hb.LastSeq = binary.BigEndian.Uint64(d.next(8, "last seq"))
	hb.Host = d.short("host")
	hb.Version = d.short("version")
	n := int(binary.BigEndian.Uint16(d.next(2, "channel count")))
	if d.err == nil && n > maxHeartbeatChannels {
		d.fail(fmt.Sprintf("%d channels, the limit is %d", n, maxHeartbeatChannels))
	}
	for i := 0; i < n && d.err == nil; i++ {
		if c := d.short("channel"); d.err == nil {
			hb.Channels = append(hb.Channels, c)
		}
	}
	if d.err == nil && d.off < len(b) {
		hb.Leaving = b[d.off]&hbLeaving != 0
	}
	return hb, d.err
}

type hbDecoder struct {
	b   []byte
	off int
	err error
}

// zeros stands in for fields past the end, so that a failed read yields
// zero values of any size the decoder asks for (at most 255 bytes).
var zeros [256]byte

func (d *hbDecoder) fail(why string) {
	if d.err == nil {
		d.err = decodeErr(ErrMalformed, d.off, "heartbeat: %s", why)
	}
}

func (d *hbDecoder) next(n int, what string) []byte {
	if d.err != nil {
		return zeros[:n]
	}
	if len(d.b)-d.off < n {
		d.fail(what + " past the end")
		return zeros[:n]
	}
	d.off += n
	return d.b[d.off-n : d.off]
}

func (d *hbDecoder) short(what string) string {
	n := int(d.next(1, what)[0])
	return string(d.next(n, what))
}
