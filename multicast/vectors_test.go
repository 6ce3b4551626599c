package multicast

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// vectorDir holds the datagram test vectors that PROTOCOL.md describes.
const vectorDir = "../testdata/datagrams"

type vector struct {
	Name        string
	Bytes       []byte
	Description string `json:"description"`
	Error       string `json:"error"`
	MaxMessage  int    `json:"maxmessage"`
	// Key, when set, is the secret the datagram is sealed with: the test
	// opens it before decoding, and seals the decoded datagram again.
	Key    string `json:"key"`
	Header *struct {
		Kind    string `json:"kind"`
		Flags   uint8  `json:"flags"`
		Records int    `json:"records"`
		Cluster string `json:"cluster"`
		Node    string `json:"node"`
		Seq     uint64 `json:"seq"`
	} `json:"header"`
	Records []struct {
		ID      string `json:"id"`
		Index   int    `json:"index"`
		Count   int    `json:"count"`
		Total   int    `json:"total"`
		Payload string `json:"payload_hex"`
	} `json:"records"`
	NAK *struct {
		Target string      `json:"target"`
		Ranges [][2]uint64 `json:"ranges"`
	} `json:"nak"`
	Repair []struct {
		Datagram string     `json:"datagram_hex"`
		Gone     *[2]uint64 `json:"gone"`
	} `json:"repair"`
	Status []struct {
		Node     string `json:"node"`
		Position uint64 `json:"position"`
		Window   uint32 `json:"window"`
	} `json:"status"`
	Heartbeat *struct {
		PID      int      `json:"pid"`
		LastSeq  uint64   `json:"last_seq"`
		Host     string   `json:"host"`
		Version  string   `json:"version"`
		Channels []string `json:"channels"`
		Leaving  bool     `json:"leaving"`
	} `json:"heartbeat"`
}

// readHex reads a .hex file: hex digits, with whitespace ignored and
// everything from # to the end of a line a comment.
func readHex(t testing.TB, path string) []byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return hexBytes(t, string(text))
}

// hexBytes decodes hex digits with # comments and whitespace.
func hexBytes(t testing.TB, text string) []byte {
	t.Helper()
	var digits strings.Builder
	for line := range strings.Lines(text) {
		line, _, _ = strings.Cut(line, "#")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(vectorDir, "*.hex"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no vectors in %s: %v", vectorDir, err)
	}
	var vs []vector
	for _, name := range names {
		v := vector{Name: strings.TrimSuffix(filepath.Base(name), ".hex"), Bytes: readHex(t, name)}
		j, err := os.ReadFile(strings.TrimSuffix(name, ".hex") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatalf("%s.json: %v", v.Name, err)
		}
		vs = append(vs, v)
	}
	return vs
}

var sentinels = map[string]error{
	"truncated": ErrTruncated,
	"magic":     ErrMagic,
	"version":   ErrVersion,
	"kind":      ErrKind,
	"fragment":  ErrFragment,
	"malformed": ErrMalformed,
	"forged":    ErrForged,
}

func decode(b []byte, maxMessage int) (Header, []Record, error) {
	h, rest, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	switch h.Kind {
	case KindNAK:
		_, _, err = ParseNAK(nil, &h, rest)
		return h, nil, err
	case KindRepair:
		_, err = ParseRepair(nil, &h, rest)
		return h, nil, err
	case KindStatus:
		_, err = ParseStatus(nil, &h, rest)
		return h, nil, err
	}
	recs, err := ParseRecords(nil, &h, rest, maxMessage)
	return h, recs, err
}

// checkControlVector checks a valid NAK, repair or status vector's fields, and
// that encoding them gives back its bytes.
func checkControlVector(t *testing.T, v *vector, h *Header) {
	rest := v.Bytes[HeaderLen:]
	again := AppendHeader(nil, h)
	switch h.Kind {
	case KindNAK:
		target, ranges, err := ParseNAK(nil, h, rest)
		if err != nil {
			t.Fatal(err)
		}
		var want []SeqRange
		for _, r := range v.NAK.Ranges {
			want = append(want, SeqRange{r[0], r[1]})
		}
		if target.String() != v.NAK.Target || !slices.Equal(ranges, want) {
			t.Errorf("nak for %v of %v, want %s of %v", target, ranges, v.NAK.Target, want)
		}
		again = AppendNAK(again, target, ranges)
	case KindRepair:
		entries, err := ParseRepair(nil, h, rest)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(v.Repair) {
			t.Fatalf("%d entries, want %d", len(entries), len(v.Repair))
		}
		for i, e := range entries {
			w := v.Repair[i]
			switch {
			case w.Gone != nil && (e.Datagram != nil || e.Gone != SeqRange{w.Gone[0], w.Gone[1]}):
				t.Errorf("entry %d: %+v, want gone %v", i, e, *w.Gone)
			case w.Gone == nil && hex.EncodeToString(e.Datagram) != w.Datagram:
				t.Errorf("entry %d: datagram %x, want %s", i, e.Datagram, w.Datagram)
			}
			if e.Datagram != nil {
				if _, _, err := decode(e.Datagram, 1<<20); err != nil {
					t.Errorf("entry %d: %v", i, err)
				}
				again = AppendRepairDatagram(again, e.Datagram)
			} else {
				again = AppendRepairGone(again, e.Gone)
			}
		}
	case KindStatus:
		entries, err := ParseStatus(nil, h, rest)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(v.Status) {
			t.Fatalf("%d entries, want %d", len(entries), len(v.Status))
		}
		for i, e := range entries {
			if w := v.Status[i]; e.Node.String() != w.Node || e.Position != w.Position || e.Window != w.Window {
				t.Errorf("entry %d: %+v, want %+v", i, e, w)
			}
		}
		again = AppendStatus(again, entries)
	}
	if string(again) != string(v.Bytes) {
		t.Errorf("encoding the decoded datagram gives\n%x\nwant\n%x", again, v.Bytes)
	}
}

func TestVectors(t *testing.T) {
	lab := ClusterIDOf("lab")
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			maxMessage := v.MaxMessage
			if maxMessage == 0 {
				maxMessage = 1 << 20
			}
			b, openErr := v.Bytes, error(nil)
			if v.Key != "" {
				b, openErr = openVector(t, &v)
			}
			h, recs, err := decode(b, maxMessage)
			if openErr != nil {
				err = openErr
			}
			if strings.HasPrefix(v.Name, "invalid-") {
				want := sentinels[v.Error]
				if want == nil {
					t.Fatalf("unknown error %q in the vector", v.Error)
				}
				if !errors.Is(err, want) {
					t.Errorf("got %v, want %v", err, want)
				}
				for name, s := range sentinels {
					if s != want && errors.Is(err, s) {
						t.Errorf("%v also matches %s", err, name)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := v.Header
			flags := h.Flags
			if v.Key != "" {
				flags = v.Bytes[4] // opening cleared it
			}
			if h.Kind.String() != w.Kind || flags != w.Flags || h.Records != w.Records || hex.EncodeToString(h.Cluster[:]) != w.Cluster || h.Node.String() != w.Node || h.Seq != w.Seq {
				t.Errorf("header %+v, want %+v", h, *w)
			}
			if h.Cluster != lab {
				t.Errorf("cluster id %x is not the id of \"lab\" (%x)", h.Cluster, lab)
			}
			if h.Kind.Stream() == 1 {
				checkControlVector(t, &v, &h)
				return
			}
			if len(recs) != len(v.Records) {
				t.Fatalf("%d records, want %d", len(recs), len(v.Records))
			}
			again := AppendHeader(nil, &h)
			for i, r := range recs {
				w := v.Records[i]
				if r.ID.String() != w.ID || r.Index != w.Index || r.Count != w.Count || r.Total != w.Total || hex.EncodeToString(r.Payload) != w.Payload {
					t.Errorf("record %d: %+v, want %+v", i, r, w)
				}
				again = AppendRecord(again, &r)
			}
			if string(again) != string(b) {
				t.Errorf("encoding the decoded datagram gives\n%x\nwant\n%x", again, b)
			}
			if v.Heartbeat != nil {
				hb, err := ParseHeartbeat(recs[0].Payload)
				if err != nil {
					t.Fatal(err)
				}
				w := v.Heartbeat
				if hb.PID != w.PID || hb.LastSeq != w.LastSeq || hb.Host != w.Host || hb.Version != w.Version || strings.Join(hb.Channels, ",") != strings.Join(w.Channels, ",") || hb.Leaving != w.Leaving {
					t.Errorf("heartbeat %+v, want %+v", hb, *w)
				}
				if again := AppendHeartbeat(nil, &hb); string(again) != string(recs[0].Payload) {
					t.Errorf("encoding the decoded heartbeat gives %x, want %x", again, recs[0].Payload)
				}
			}
		})
	}
}

// openVector opens a sealed vector with its key, and checks that sealing
// what it opens gives back its bytes: sealing is deterministic, its nonce
// coming from the header.
func openVector(t *testing.T, v *vector) ([]byte, error) {
	t.Helper()
	s, err := NewSealer([]byte(v.Key), "lab")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.Open(nil, v.Bytes)
	if err != nil {
		return nil, err
	}
	if again, err := s.Seal(nil, plain); err != nil || string(again) != string(v.Bytes) {
		t.Errorf("sealing the opened datagram again gives\n%x, %v\nwant\n%x", again, err, v.Bytes)
	}
	return plain, nil
}

// TestSealedVectorFollowsTheFormula opens sealed-data with the formula of
// PROTOCOL.md written out here, without the Sealer.
func TestSealedVectorFollowsTheFormula(t *testing.T) {
	sealed := readHex(t, filepath.Join(vectorDir, "sealed-data.hex"))
	plain := readHex(t, filepath.Join(vectorDir, "data-single.hex"))
	hdr := sealed[:HeaderLen]
	key, err := hkdf.Key(sha256.New, []byte("netcluster test vector key"), hdr[6:14], "netcluster seal v1 "+string(hdr[14:30]), 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	nonce := append([]byte{0, 0, 0, 0}, hdr[30:38]...)
	body, err := gcm.Open(nil, nonce, sealed[HeaderLen:], hdr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, plain[HeaderLen:]) || hdr[4] != FlagSealed || !bytes.Equal(hdr[5:], plain[5:HeaderLen]) || !bytes.Equal(hdr[:4], plain[:4]) {
		t.Errorf("sealed-data is not data-single sealed:\n%x\n%x", sealed, plain)
	}
}

func TestParseHeartbeatErrors(t *testing.T) {
	good := AppendHeartbeat(nil, &Heartbeat{PID: 1, Host: "h", Version: "v", Channels: []string{"A"}})
	for n := range len(good) {
		if _, err := ParseHeartbeat(good[:n]); !errors.Is(err, ErrMalformed) {
			t.Errorf("heartbeat cut at %d bytes: %v, want ErrMalformed", n, err)
		}
	}
	if hb, err := ParseHeartbeat(good); err != nil || hb.Leaving {
		t.Errorf("a heartbeat with no flags: leaving %v, %v", hb.Leaving, err)
	}
	if hb, err := ParseHeartbeat(append(good, 1, 2, 3)); err != nil || !hb.Leaving {
		t.Errorf("a heartbeat with flags 1 and fields of a later version: leaving %v, %v", hb.Leaving, err)
	}
	if hb, err := ParseHeartbeat(append(good, 2)); err != nil || hb.Leaving {
		t.Errorf("a heartbeat with flags 2, a later version's: leaving %v, %v", hb.Leaving, err)
	}
	leaving := AppendHeartbeat(nil, &Heartbeat{PID: 1, Host: "h", Version: "v", Channels: []string{"A"}, Leaving: true})
	if string(leaving) != string(append(good, 1)) {
		t.Errorf("a leaving heartbeat encodes as %x, want %x", leaving, append(good, 1))
	}
	tooMany := append(good[:len(good)-4:len(good)-4], 0xff, 0xff)
	if _, err := ParseHeartbeat(tooMany); err == nil || !strings.Contains(err.Error(), "65535 channels") {
		t.Errorf("65535 channels: %v", err)
	}
}

// TestProtocolDoc keeps PROTOCOL.md's section on the network protocol and
// testdata/datagrams together: each datagram shown is a vector file's
// bytes, and the page names every vector.
func TestProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	vs := loadVectors(t)
	shown := 0
	for _, blk := range strings.Split(string(doc), "```\n# testdata/datagrams/")[1:] {
		name, rest, _ := strings.Cut(blk, "\n")
		name = strings.TrimSuffix(name, ".hex")
		body, _, ok := strings.Cut(rest, "```")
		if !ok {
			t.Fatalf("the example of %s is not closed", name)
		}
		path := filepath.Join(vectorDir, name+".hex")
		if want := readHex(t, path); hex.EncodeToString(want) != hex.EncodeToString(hexBytes(t, body)) {
			t.Errorf("PROTOCOL.md's example %s differs from %s", name, path)
		}
		shown++
	}
	if shown == 0 {
		t.Error("PROTOCOL.md shows no datagram")
	}
	for _, v := range vs {
		if !strings.Contains(string(doc), "`"+v.Name+"`") {
			t.Errorf("PROTOCOL.md does not name vector %s", v.Name)
		}
	}
}
