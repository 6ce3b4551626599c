package multicast

import (
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
)

// udpHeaderLen is where a UDP socket's filter finds the datagram: it
// sees the packet from the UDP header on.
const udpHeaderLen = 8

// ownFilter is a socket filter that drops the datagrams of node, as
// multicast loopback hands them back to it, in the kernel: the node does
// not spend a system call, a copy and a parse on each of its own
// datagrams. It drops only what starts with the magic "nc" and names node
// as the sender; anything else, short datagrams included, goes on to the
// checks of the read loop.
func ownFilter(node uuid.UUID) ([]bpf.RawInstruction, error) {
	const (
		magicAt = udpHeaderLen
		nodeAt  = udpHeaderLen + 14
		minLen  = nodeAt + 16
	)
	word := func(i int) uint32 { return binary.BigEndian.Uint32(node[4*i:]) }
	// Each test skips to "accept", the last instruction, when it fails;
	// all passing falls through to "drop".
	prog := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: minLen, SkipTrue: 11},
		bpf.LoadAbsolute{Off: magicAt, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(magic[0])<<8 | uint32(magic[1]), SkipTrue: 9},
		bpf.LoadAbsolute{Off: nodeAt, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: word(0), SkipTrue: 7},
		bpf.LoadAbsolute{Off: nodeAt + 4, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: word(1), SkipTrue: 5},
		bpf.LoadAbsolute{Off: nodeAt + 8, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: word(2), SkipTrue: 3},
		bpf.LoadAbsolute{Off: nodeAt + 12, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: word(3), SkipTrue: 1},
		bpf.RetConstant{Val: 0},          // drop
		bpf.RetConstant{Val: 0xffffffff}, // accept, whole
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("multicast: assembling the socket filter: %w", err)
	}
	return raw, nil
}

// dropOwn attaches ownFilter to the socket where the system allows it
// (Linux); elsewhere the read loop ignores the node's datagrams itself.
func dropOwn(p *ipv4.PacketConn, node uuid.UUID) error {
	raw, err := ownFilter(node)
	if err != nil {
		return err
	}
	return p.SetBPF(raw)
}
