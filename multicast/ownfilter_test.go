package multicast

import (
	"testing"

	"github.com/google/uuid"
	"golang.org/x/net/bpf"
)

// TestOwnFilter runs the socket filter in x/net/bpf's virtual machine on
// UDP packets: it must drop exactly the node's own datagrams.
func TestOwnFilter(t *testing.T) {
	node := uuid.New()
	other := uuid.New()
	raw, err := ownFilter(node)
	if err != nil {
		t.Fatal(err)
	}
	var prog []bpf.Instruction
	for _, r := range raw {
		prog = append(prog, r.Disassemble())
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	dg := func(from uuid.UUID) []byte {
		h := Header{Kind: KindData, Records: 1, Cluster: ClusterIDOf("lab"), Node: from, Seq: 1}
		return AppendRecord(AppendHeader(nil, &h), &Record{ID: uuid.New(), Count: 1, Total: 1, Payload: []byte{1}})
	}
	own := dg(node)
	badMagic := append([]byte{'x'}, own[1:]...)
	lastByte := append([]byte(nil), own...)
	lastByte[29] ^= 1 // the node id's last byte
	for _, tc := range []struct {
		name string
		dg   []byte
		keep bool
	}{
		{"own", own, false},
		{"own, header only", own[:HeaderLen], false},
		{"another node", dg(other), true},
		{"node differs in its last byte", lastByte, true},
		{"another magic", badMagic, true},
		{"cut before the node id ends", own[:29], true},
		{"empty", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := append(make([]byte, udpHeaderLen), tc.dg...)
			n, err := vm.Run(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if kept := n > 0; kept != tc.keep {
				t.Errorf("kept %d bytes; want kept = %v", n, tc.keep)
			}
		})
	}
}
