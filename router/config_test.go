package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster"
	"github.com/tailscale/hujson"
)

// wantProblem is one expected problem: its line, its key and a fragment of its
// message.
type wantProblem struct {
	line int
	key  string
	msg  string
}

// parseProblemCases are inputs that must fail, with every problem they
// hold. FuzzParse is seeded from them too.
var parseProblemCases = []struct {
	name string
	in   string
	want []wantProblem
}{
	// The file as a whole.
	{"top level array", `[]`, []wantProblem{{1, "", "want an object at the top level, got an array"}}},
	{"top level string", `"control"`, []wantProblem{{1, "", `want an object at the top level, got "control"`}}},
	{"top level null", "\n null", []wantProblem{{2, "", "want an object at the top level, got null"}}},
	{"empty input", ``, []wantProblem{{1, "", "unexpected EOF"}}},
	{"unterminated object", "{\n\"port\": 1", []wantProblem{{2, "", "unexpected EOF"}}},
	{"missing comma", "{\n\"port\": 1\n\"ttl\": 1}", []wantProblem{{3, "", "after object value"}}},
	{"second top-level value", "{}\n{}", []wantProblem{{2, "", "after top-level value"}}},
	{"unterminated comment", "{} /* ", []wantProblem{{1, "", "parsing comment"}}},

	// Unknown and duplicate keys.
	{"unknown key", `{"colour": "blue"}`, []wantProblem{{1, "colour", `unknown key "colour"; known keys: addr, port,`}}},
	{"unknown key in another case", `{"Port": 4454}`, []wantProblem{{1, "Port", `did you mean "port"?`}}},
	{"misspelt key", `{"conecttonet": true}`, []wantProblem{{1, "conecttonet", `did you mean "connecttonet"?`}}},
	{"unknown rule key", `{"channels": {"A": {"propagate": ".*"}}}`, []wantProblem{{1, "channels.A.propagate", `unknown key "propagate"`}}},
	{"misspelt rule key", `{"channels": {"A": {"dumptoconsol": true}}}`, []wantProblem{{1, "channels.A.dumptoconsol", `did you mean "dumptoconsole"?`}}},
	{"duplicate key", "{\"port\": 1,\n\"port\": 2}", []wantProblem{{2, "port", "duplicate key (first at line 1, column 2)"}}},
	{"duplicate rule key", "{\"channels\": {\"A\": {\"dumptoconsole\": true,\n\"dumptoconsole\": true}}}", []wantProblem{{2, "channels.A.dumptoconsole", "duplicate key"}}},
	{"duplicate channel", "{\"channels\": {\"A\": {},\n\"A\": {}}}", []wantProblem{{2, "channels.A", "duplicate key"}}},
	{"duplicate bad key", `{"x": 1, "x": 2}`, []wantProblem{{1, "x", "unknown key"}, {1, "x", "unknown key"}}},

	// Wrong types.
	{"invalid UTF-8", "{\"cluster\": \"\xff\"}", []wantProblem{{1, "cluster", "invalid UTF-8"}}},
	{"invalid UTF-8 where a bool belongs", "{\"dumpnet\": \"\xff\"}", []wantProblem{{1, "dumpnet", `want true or false, got "\xff"`}}},
	{"bool as string", `{"connecttonet": "yes"}`, []wantProblem{{1, "connecttonet", `want true or false, got "yes"`}}},
	{"bool as number", `{"dumpnet": 1}`, []wantProblem{{1, "dumpnet", "want true or false, got 1"}}},
	{"bool as null", `{"startcontrol": null}`, []wantProblem{{1, "startcontrol", "want true or false, got null"}}},
	{"rule bool as string", `{"channels": {"A": {"propagatetonet": "false"}}}`, []wantProblem{{1, "channels.A.propagatetonet", `want true or false, got "false"`}}},
	{"acceptfromnet as number", `{"channels": {"A": {"acceptfromnet": 0}}}`, []wantProblem{{1, "channels.A.acceptfromnet", "want true or false, got 0"}}},
	{"port as string", `{"port": "4454"}`, []wantProblem{{1, "port", `want an integer, got "4454"`}}},
	{"port with fraction", `{"port": 4454.5}`, []wantProblem{{1, "port", "want an integer, got 4454.5"}}},
	{"port as float", `{"port": 4454.0}`, []wantProblem{{1, "port", "want an integer, got 4454.0"}}},
	{"port beyond int64", `{"port": 99999999999999999999}`, []wantProblem{{1, "port", "99999999999999999999 is out of range"}}},
	{"ttl with exponent", `{"ttl": 1e0}`, []wantProblem{{1, "ttl", "want an integer, got 1e0"}}},
	{"ttl as bool", `{"ttl": true}`, []wantProblem{{1, "ttl", "want an integer, got true"}}},
	{"maxframe as array", `{"maxframe": [1024]}`, []wantProblem{{1, "maxframe", "want an integer, got an array"}}},
	{"maxpending as null", `{"maxpending": null}`, []wantProblem{{1, "maxpending", "want an integer, got null"}}},
	{"addr as number", `{"addr": 239}`, []wantProblem{{1, "addr", "want a string, got 239"}}},
	{"interface as bool", `{"interface": true}`, []wantProblem{{1, "interface", "want a string, got true"}}},
	{"key as object", `{"key": {}}`, []wantProblem{{1, "key", "want a string, got an object"}}},
	{"socketmode as number", `{"socketmode": 660}`, []wantProblem{{1, "socketmode", `want an octal string such as "0660", got 660`}}},
	{"channels as string", `{"channels": "A,B"}`, []wantProblem{{1, "channels", `want an object, got "A,B"`}}},
	{"channels as array", `{"channels": ["A"]}`, []wantProblem{{1, "channels", "want an object, got an array"}}},
	{"rule as bool", `{"channels": {"A": true}}`, []wantProblem{{1, "channels.A", "want an object, got true"}}},
	{"long value clipped", `{"addr": "` + strings.Repeat("x", 100) + `"}`, []wantProblem{{1, "addr", `"` + strings.Repeat("x", 40) + `..." is not an IPv4`}}},
	{"long wrong value clipped", `{"port": "` + strings.Repeat("x", 100) + `"}`, []wantProblem{{1, "port", `got "` + strings.Repeat("x", 39) + `...`}}},

	// addr.
	{"addr not an address", `{"addr": "multicast"}`, []wantProblem{{1, "addr", `"multicast" is not an IPv4 multicast address`}}},
	{"addr unicast", `{"addr": "10.0.0.1"}`, []wantProblem{{1, "addr", "not an IPv4 multicast address"}}},
	{"addr IPv6", `{"addr": "ff02::1"}`, []wantProblem{{1, "addr", "not an IPv4 multicast address"}}},
	{"addr IPv4 in IPv6", `{"addr": "::ffff:239.1.1.1"}`, []wantProblem{{1, "addr", "not an IPv4 multicast address"}}},
	{"addr with port", `{"addr": "239.1.1.1:4454"}`, []wantProblem{{1, "addr", "not an IPv4 multicast address"}}},
	{"addr original default", `{"addr": "224.0.0.0"}`, []wantProblem{{1, "addr", `reserved for local network control; use "239.255.77.77"`}}},
	{"addr top of reserved block", `{"addr": "224.0.0.255"}`, []wantProblem{{1, "addr", "reserved for local network control"}}},

	// Ranges.
	{"port zero", `{"port": 0}`, []wantProblem{{1, "port", "0 is out of range 1..65535"}}},
	{"port negative", `{"port": -1}`, []wantProblem{{1, "port", "out of range 1..65535"}}},
	{"port too big", `{"port": 65536}`, []wantProblem{{1, "port", "65536 is out of range 1..65535"}}},
	{"ttl negative", `{"ttl": -1}`, []wantProblem{{1, "ttl", "out of range 0..255"}}},
	{"ttl too big", `{"ttl": 256}`, []wantProblem{{1, "ttl", "256 is out of range 0..255"}}},
	{"maxframe too small", `{"maxframe": 1023}`, []wantProblem{{1, "maxframe", "out of range 1024..67108864"}}},
	{"metrics without a port", `{"metrics": "127.0.0.1"}`, []wantProblem{{1, "metrics", `"127.0.0.1" is not a host:port address`}}},
	{"metrics port not a number", `{"metrics": "localhost:http"}`, []wantProblem{{1, "metrics", `port "http" is not a number from 0 to 65535`}}},
	{"metrics port too big", `{"metrics": ":65536"}`, []wantProblem{{1, "metrics", `port "65536" is not a number`}}},
	{"maxframe too big", `{"maxframe": 67108865, "maxpending": 1073741824}`, []wantProblem{{1, "maxframe", "out of range 1024..67108864"}}},
	{"maxpending too big", `{"maxpending": 1073741825}`, []wantProblem{{1, "maxpending", "out of range 1024..1073741824"}}},
	{"maxpending below maxframe", `{"maxframe": 4096, "maxpending": 2048}`, []wantProblem{{1, "maxpending", "maxpending (2048) must be at least maxframe (4096)"}}},
	{"maxframe above default maxpending", `{"maxframe": 16777216}`, []wantProblem{{1, "maxframe", "maxpending (8388608, the default) must be at least maxframe (16777216)"}}},
	{"payload too small", `{"payload": 575}`, []wantProblem{{1, "payload", "575 is out of range 576..65467"}}},
	{"payload too large", `{"payload": 65508}`, []wantProblem{{1, "payload", "out of range"}}},
	{"payload too large for a repair", `{"payload": 65468}`, []wantProblem{{1, "payload", "65468 is out of range 576..65467"}}},
	{"payload too small for maxframe", `{"payload": 1000, "maxframe": 67108864, "maxpending": 67108864}`, []wantProblem{{1, "payload", "a frame of maxframe (67108864) bytes would take 71698 datagrams of payload (1000) bytes, more than 65535"}}},
	{"payload too small for maxframe once sealed", `{"payload": 1089, "maxframe": 67108864, "maxpending": 67108864, "key": "k"}`, []wantProblem{{1, "payload", "would take 66511 datagrams of payload (1089) bytes"}}},
	{"heartbeat not a duration", `{"heartbeat": "1"}`, []wantProblem{{1, "heartbeat", `want a duration such as "1s" or "500ms", got "1"`}}},
	{"heartbeat a number", `{"heartbeat": 1}`, []wantProblem{{1, "heartbeat", `want a duration such as "1s", got 1`}}},
	{"heartbeat too short", `{"heartbeat": "1ms"}`, []wantProblem{{1, "heartbeat", "1ms is out of range 10ms..1h0m0s"}}},
	{"peertimeout below twice heartbeat", `{"heartbeat": "3s"}`, []wantProblem{{1, "heartbeat", "peertimeout (5s, the default) must be at least twice heartbeat (3s)"}}},
	{"peertimeout too long", `{"peertimeout": "25h"}`, []wantProblem{{1, "peertimeout", "out of range"}}},
	{"pinginterval not a duration", `{"pinginterval": "10"}`, []wantProblem{{1, "pinginterval", `want a duration such as "1s" or "500ms", got "10"`}}},
	{"pinginterval a number", `{"pinginterval": 0}`, []wantProblem{{1, "pinginterval", `want a duration such as "10s", or "0s" for off, got 0`}}},
	{"pinginterval too short", `{"pinginterval": "5ms"}`, []wantProblem{{1, "pinginterval", "5ms is out of range 10ms..1h0m0s"}}},
	{"pinginterval negative", `{"pinginterval": "-1s"}`, []wantProblem{{1, "pinginterval", "out of range"}}},
	{"pingtimeout below twice pinginterval", `{"pinginterval": "20s"}`, []wantProblem{{1, "pinginterval", "pingtimeout (30s, the default) must be at least twice pinginterval (20s)"}}},
	{"pingtimeout too long", `{"pingtimeout": "25h"}`, []wantProblem{{1, "pingtimeout", "out of range"}}},
	{"history negative", `{"history": -1}`, []wantProblem{{1, "history", "out of range"}}},
	{"history too big", `{"history": 2147483648}`, []wantProblem{{1, "history", "out of range"}}},
	{"history not a number", `{"history": "4MiB"}`, []wantProblem{{1, "history", `want an integer, got "4MiB"`}}},
	{"gaptimeout not a duration", `{"gaptimeout": 2}`, []wantProblem{{1, "gaptimeout", `want a duration such as "2s", got 2`}}},
	{"gaptimeout too short", `{"gaptimeout": "1ms"}`, []wantProblem{{1, "gaptimeout", "1ms is out of range 10ms..1h0m0s"}}},
	{"cluster too long", `{"cluster": "` + strings.Repeat("c", 65) + `"}`, []wantProblem{{1, "cluster", "65 bytes long, the limit is 64"}}},
	{"cluster too long in bytes", `{"cluster": "` + strings.Repeat("é", 33) + `"}`, []wantProblem{{1, "cluster", "66 bytes long"}}},

	// Channel names.
	{"channel name empty", `{"channels": {"": {}}}`, []wantProblem{{1, "channels.", "a channel name is 1 to 64"}}},
	{"channel name dot", `{"channels": {".": {}}}`, []wantProblem{{1, "channels..", `"." is not allowed`}}},
	{"channel name dot dot", `{"channels": {"..": {}}}`, []wantProblem{{1, "channels...", `".." is not allowed`}}},
	{"channel name slash", `{"channels": {"a/b": {}}}`, []wantProblem{{1, "channels.a/b", "a channel name is"}}},
	{"channel name space", `{"channels": {"a b": {}}}`, []wantProblem{{1, "channels.a b", "a channel name is"}}},
	{"channel name non-ASCII", `{"channels": {"ä": {}}}`, []wantProblem{{1, "channels.ä", "a channel name is"}}},
	{"channel name newline", `{"channels": {"a\nb": {}}}`, []wantProblem{{1, `channels.a\nb`, "a channel name is"}}},
	{"channel name too long", `{"channels": {"` + strings.Repeat("n", 65) + `": {}}}`, []wantProblem{{1, "channels." + strings.Repeat("n", 64) + "...", "1 to 64"}}},

	// propagatetochannels.
	{"propagate true", `{"channels": {"A": {"propagatetochannels": true}}}`, []wantProblem{{1, "channels.A.propagatetochannels", `true is not allowed; use ".*" for all channels`}}},
	{"propagate number", `{"channels": {"A": {"propagatetochannels": 0}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "want false or a regular expression string, got 0"}}},
	{"propagate null", `{"channels": {"A": {"propagatetochannels": null}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "want false or a regular expression string, got null"}}},
	{"propagate array", `{"channels": {"A": {"propagatetochannels": ["B"]}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "got an array"}}},
	{"propagate empty", `{"channels": {"A": {"propagatetochannels": ""}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "empty expression"}}},
	{"propagate bad regexp", `{"channels": {"A": {"propagatetochannels": "("}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "error parsing regexp: missing closing )"}}},
	{"propagate bad class", `{"channels": {"A": {"propagatetochannels": "[z-a]"}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "invalid character class range"}}},
	{"propagate escaping its anchors", `{"channels": {"A": {"propagatetochannels": "A)|(B"}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "unexpected )"}}},
	{"propagate unclosed quote", `{"channels": {"A": {"propagatetochannels": "\\Qx"}}}`, []wantProblem{{1, "channels.A.propagatetochannels", "cannot anchor the expression"}}},

	// Keys, sockets, the control channel.
	{"key and keyfile", `{"key": "k", "keyfile": "/k"}`, []wantProblem{{1, "keyfile", "key and keyfile are both set"}}},
	{"key as showconfig shows it", `{"key": "(set)"}`, []wantProblem{{1, "key", `"(set)" stands for a secret that showconfig does not show; supply the secret with "key", or better "keyfile"`}}},
	{"socket without placeholder", `{"socket": "/run/nc.sock"}`, []wantProblem{{1, "socket", `"/run/nc.sock" lacks "{channel}"`}}},
	{"socket with placeholder misspelt", `{"socket": "/run/{Channel}.sock"}`, []wantProblem{{1, "socket", `lacks "{channel}"`}}},
	{"socketmode empty", `{"socketmode": ""}`, []wantProblem{{1, "socketmode", `want an octal string such as "0660", got ""`}}},
	{"socketmode symbolic", `{"socketmode": "rw-rw----"}`, []wantProblem{{1, "socketmode", "want an octal string"}}},
	{"socketmode 0o prefix", `{"socketmode": "0o660"}`, []wantProblem{{1, "socketmode", "want an octal string"}}},
	{"socketmode decimal digits", `{"socketmode": "0680"}`, []wantProblem{{1, "socketmode", "want an octal string"}}},
	{"socketmode sticky", `{"socketmode": "1777"}`, []wantProblem{{1, "socketmode", "bits beyond 0777"}}},
	{"socketmode owner read only", `{"socketmode": "0400"}`, []wantProblem{{1, "socketmode", "must include 0600"}}},
	{"socketmode owner write only", `{"socketmode": "0260"}`, []wantProblem{{1, "socketmode", "must include 0600"}}},
	{"control accepts from net", `{"channels": {"control": {"acceptfromnet": true}}}`, []wantProblem{{1, "channels.control.acceptfromnet", "never accepts events from the network"}}},

	// Several problems at once, in file order.
	{"every problem reported", "{\"port\": 0,\n\"x\": 1,\n\"ttl\": \"1\",\n\"channels\": {\"A\": {\"propagatetochannels\": true}, \"B\": 1}}", []wantProblem{
		{1, "port", "out of range"},
		{2, "x", "unknown key"},
		{3, "ttl", "want an integer"},
		{4, "channels.A.propagatetochannels", "true is not allowed"},
		{4, "channels.B", "want an object"},
	}},
}

func TestParseProblems(t *testing.T) {
	for _, tc := range parseProblemCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.json", []byte(tc.in))
			checkProblems(t, err, tc.want)
		})
	}
}

// checkProblems checks that err is a *ConfigError holding exactly the
// wanted problems, in order.
func checkProblems(t testing.TB, err error, wants []wantProblem) {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v, want a *ConfigError", err)
	}
	got := ce.Problems
	for i := range max(len(got), len(wants)) {
		switch {
		case i >= len(got):
			t.Errorf("missing problem %d: %+v", i, wants[i])
		case i >= len(wants):
			t.Errorf("unexpected problem %d: %+v", i, got[i])
		case got[i].Line != wants[i].line || got[i].Key != wants[i].key || !strings.Contains(got[i].Msg, wants[i].msg):
			t.Errorf("problem %d:\n-want line %d, key %q, msg containing %q\n+got  line %d, key %q, msg %q",
				i, wants[i].line, wants[i].key, wants[i].msg, got[i].Line, got[i].Key, got[i].Msg)
		}
	}
}

// badFiles names what is wrong with each file in testdata/config/bad.
var badFiles = map[string][]wantProblem{
	"not-object.json":           {{1, "", "want an object at the top level, got an array"}},
	"syntax-missing-comma.json": {{3, "", "after object value (expecting ',' or '}')"}},
	"empty.json":                {{1, "", "unexpected EOF"}},
	"unknown-key.json":          {{3, "prot", `unknown key "prot"; did you mean "port"?`}},
	"unknown-key-in-rule.json":  {{4, "channels.A.propagatetonett", `did you mean "propagatetonet"?`}},
	"duplicate-key.json":        {{4, "port", "duplicate key (first at line 2, column 3)"}},
	"duplicate-channel.json":    {{5, "channels.A", "duplicate key (first at line 3, column 5)"}},
	"bool-as-string.json":       {{2, "connecttonet", `want true or false, got "yes"`}},
	"integers-not-integers.json": {
		{2, "port", `want an integer, got "4454"`},
		{3, "ttl", "want an integer, got 1.5"},
		{4, "maxframe", "want an integer, got 1e6"},
		{5, "maxpending", "want an integer, got null"},
	},
	"channels-not-object.json":               {{2, "channels", `want an object, got "A,B"`}},
	"rule-not-object.json":                   {{3, "channels.A", "want an object, got true"}},
	"addr-not-multicast.json":                {{2, "addr", `"192.168.1.10" is not an IPv4 multicast address`}},
	"addr-not-ipv4.json":                     {{2, "addr", `"ff02::1" is not an IPv4 multicast address`}},
	"addr-reserved.json":                     {{3, "addr", "224.0.0.251 is in 224.0.0.0/24, which is reserved for local network control"}},
	"original-addr.json":                     {{3, "addr", `224.0.0.0 is in 224.0.0.0/24, which is reserved for local network control; use "239.255.77.77"`}},
	"port-out-of-range.json":                 {{2, "port", "70000 is out of range 1..65535"}},
	"ttl-out-of-range.json":                  {{2, "ttl", "256 is out of range 0..255"}},
	"maxframe-out-of-range.json":             {{2, "maxframe", "512 is out of range 1024..67108864"}},
	"maxpending-out-of-range.json":           {{2, "maxpending", "2147483648 is out of range 1024..1073741824"}},
	"maxpending-below-maxframe.json":         {{3, "maxpending", "maxpending (1048576) must be at least maxframe (2097152)"}},
	"maxframe-above-default-maxpending.json": {{2, "maxframe", "maxpending (8388608, the default) must be at least maxframe (16777216)"}},
	"channel-name-invalid.json":              {{3, "channels.a/b", "a channel name is 1 to 64 letters"}},
	"channel-name-dotdot.json":               {{3, "channels...", `channel name ".." is not allowed`}},
	"channel-name-too-long.json":             {{3, "channels.a123456789b123456789c123456789d123456789e123456789f123456789g123...", "1 to 64"}},
	"propagate-true.json":                    {{3, "channels.A.propagatetochannels", `use ".*" for all channels`}},
	"propagate-number.json":                  {{3, "channels.A.propagatetochannels", "want false or a regular expression string, got 1"}},
	"propagate-empty.json":                   {{3, "channels.A.propagatetochannels", "empty expression"}},
	"propagate-bad-regex.json":               {{3, "channels.A.propagatetochannels", "missing closing )"}},
	"key-and-keyfile.json":                   {{3, "keyfile", "key and keyfile are both set"}},
	"socket-no-placeholder.json":             {{2, "socket", `lacks "{channel}"`}},
	"socketmode-not-octal.json":              {{2, "socketmode", `want an octal string such as "0660", got "rw-rw----"`}},
	"socketmode-number.json":                 {{2, "socketmode", `want an octal string such as "0660", got 660`}},
	"socketmode-too-wide.json":               {{2, "socketmode", `"01777" has bits beyond 0777`}},
	"socketmode-no-owner-rw.json":            {{2, "socketmode", `"0440" must include 0600`}},
	"cluster-too-long.json":                  {{2, "cluster", "65 bytes long, the limit is 64"}},
	"flowcontrol-unknown.json":               {{2, "flowcontrol", `"max" is neither "min" nor "none"`}},
	"maxrate-negative.json":                  {{2, "maxrate", "-1 is out of range"}},
	"control-acceptfromnet.json":             {{3, "channels.control.acceptfromnet", "never accepts events from the network"}},
	"many-problems.json": {
		{3, "addr", "reserved for local network control"},
		{4, "port", "0 is out of range"},
		{5, "dumpnet", `want true or false, got "no"`},
		{6, "colour", `unknown key "colour"`},
		{8, "channels.A.propagatetochannels", "true is not allowed"},
		{9, "channels.B.propagatetochannels", "missing closing )"},
		{9, "channels.B.dumptoconsole", "want true or false, got 1"},
		{10, "channels.c d", "a channel name is"},
	},
}

func TestBadFiles(t *testing.T) {
	files := configFiles(t, "bad")
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			wants, ok := badFiles[name]
			if !ok {
				t.Fatalf("%s has no entry in badFiles: say what is wrong with it", path)
			}
			c, err := LoadFile(path)
			if err == nil {
				t.Fatalf("LoadFile(%s) = %v, want an error", path, c)
			}
			checkProblems(t, err, wants)
			if msg := err.Error(); !strings.HasPrefix(msg, path+":") {
				t.Errorf("error %q does not start with the path %q", msg, path)
			}
		})
	}
	for name := range badFiles {
		if !slices.Contains(files, filepath.Join("..", "testdata", "config", "bad", name)) {
			t.Errorf("badFiles names %s, which is not in testdata/config/bad", name)
		}
	}
}

func TestGoodFiles(t *testing.T) {
	for _, path := range configFiles(t, "good") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.File != path {
				t.Errorf("File = %q, want %q", c.File, path)
			}
		})
	}
}

// configFiles returns the .json files in testdata/config/dir.
func configFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "config", dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in testdata/config/%s: %v", dir, err)
	}
	return files
}

// chanRule is a channel rule in a wanted Config. Its Propagate is nil;
// loadGood checks the compiled one.
func chanRule(name, propagate string, toNet, dump, fromNet bool) ChannelConfig {
	mode := fs.FileMode(0o660) // the default socketmode, which a rule inherits
	if name == ControlChannel {
		mode = 0o600
	}
	return ChannelConfig{Name: name, PropagateToChannels: propagate, PropagateToNet: toNet, DumpToConsole: dump, AcceptFromNet: fromNet, SocketMode: mode, Overflow: overflowBlock}
}

// withMode is r with its socket mode inherited from a top-level
// socketmode of mode.
func withMode(r ChannelConfig, mode fs.FileMode) ChannelConfig {
	if r.Name != ControlChannel {
		r.SocketMode = mode
	}
	return r
}

// withOverflow is r with the overflow policy given.
func withOverflow(r ChannelConfig, policy string) ChannelConfig {
	r.Overflow = policy
	return r
}

// loadGood loads testdata/config/good/name, checks that each Propagate is
// PropagateToChannels anchored, and returns the Config without them, to
// compare.
func loadGood(t testing.TB, name string) *Config {
	t.Helper()
	c, err := LoadFile(filepath.Join("..", "testdata", "config", "good", name))
	if err != nil {
		t.Fatal(err)
	}
	return withoutRegexps(t, c)
}

func withoutRegexps(t testing.TB, c *Config) *Config {
	t.Helper()
	out := *c
	out.File = ""
	out.Channels = make(map[string]ChannelConfig)
	for name, ch := range c.Channels {
		want := ""
		if ch.PropagateToChannels != "" {
			want = "^(?:" + ch.PropagateToChannels + ")$"
		}
		if got := fmt.Sprint(ch.Propagate); (ch.Propagate == nil) != (want == "") || ch.Propagate != nil && got != want {
			t.Errorf("channel %s: Propagate = %v, want %q", name, ch.Propagate, want)
		}
		ch.Propagate = nil
		out.Channels[name] = ch
	}
	return &out
}

// fieldDiff returns the fields in which two structs of one type differ, as
// (-want +got), or "" if they do not.
func fieldDiff(want, got any) string {
	w, g := reflect.ValueOf(want), reflect.ValueOf(got)
	var b strings.Builder
	for i := range w.NumField() {
		wf, gf := w.Field(i).Interface(), g.Field(i).Interface()
		if !reflect.DeepEqual(wf, gf) {
			fmt.Fprintf(&b, "%s:\n-%+v\n+%+v\n", w.Type().Field(i).Name, wf, gf)
		}
	}
	return b.String()
}

func TestParseValues(t *testing.T) {
	defaults := *Defaults()
	with := func(f func(c *Config)) Config {
		c := defaults
		c.Channels = map[string]ChannelConfig{ControlChannel: chanRule(ControlChannel, "", false, false, false)}
		f(&c)
		return c
	}
	tests := []struct {
		name string
		file string // in testdata/config/good
		want Config
	}{
		{"minimal", "minimal.json", with(func(c *Config) {})},
		{"original", "original.json", with(func(c *Config) {
			c.DumpNet, c.ConnectToNet = true, true
			c.Channels["A"] = chanRule("A", ".*", false, false, true)
			c.Channels["B"] = chanRule("B", ".*", false, false, true)
		})},
		{"full", "full.json", Config{
			Addr: "239.1.2.3", Port: 5000, ConnectToNet: true, DumpNet: true, StartControl: true,
			Interface: "eth1", TTL: 4, Cluster: "lab", KeyFile: "/etc/netcluster/key",
			Payload: 9000, Heartbeat: 250 * time.Millisecond, PeerTimeout: 2 * time.Second,
			PingInterval: 2 * time.Second, PingTimeout: 7 * time.Second, StallTimeout: 500 * time.Millisecond,
			History: 0, GapTimeout: 500 * time.Millisecond, FlowControl: "none", MaxRate: 10_000_000,
			RetainBytes: 65536, RetainAge: 5 * time.Second,
			Socket: "/var/run/netcluster-{channel}", SocketMode: 0o600, MaxFrame: 65536, MaxPending: 65536, Metrics: "127.0.0.1:9464",
			NATS: natsDefaults,
			Channels: map[string]ChannelConfig{
				"control":     chanRule("control", "logs", true, true, false),
				"sensors.raw": withOverflow(withMode(chanRule("sensors.raw", `sensors\..*|logs`, true, false, false), 0o600), overflowDrop),
				"sensors.avg": withMode(chanRule("sensors.avg", "", false, false, true), 0o600),
				"logs":        withMode(chanRule("logs", "", false, false, true), 0o600),
			},
		}},
		{"byte order mark, comments, trailing commas", "hujson.json", with(func(c *Config) {
			c.Port, c.Key = 4455, "s3cret"
			c.Channels["A"] = chanRule("A", "B", false, false, true)
			c.Channels["B"] = chanRule("B", "", false, false, true)
		})},
		{"no control channel", "no-control.json", with(func(c *Config) {
			c.StartControl = false
			c.Channels = map[string]ChannelConfig{
				"A": chanRule("A", ".*", false, false, true),
				"B": chanRule("B", ".*", false, false, true),
			}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := fieldDiff(tc.want, *loadGood(t, tc.file)); d != "" {
				t.Errorf("%s (-want +got):\n%s", tc.file, d)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	want := Config{
		Addr: "239.255.77.77", Port: 4454, StartControl: true, TTL: 1,
		Payload: 1400, Heartbeat: time.Second, PeerTimeout: 5 * time.Second,
		History: 4 << 20, GapTimeout: 2 * time.Second, FlowControl: "min",
		SocketMode: 0o660, MaxFrame: 1 << 20, MaxPending: 8 << 20,
		PingInterval: 10 * time.Second, PingTimeout: 30 * time.Second, StallTimeout: 2 * time.Second,
		RetainBytes: 4 << 20, RetainAge: 30 * time.Second,
		NATS:     natsDefaults,
		Channels: map[string]ChannelConfig{ControlChannel: chanRule(ControlChannel, "", false, false, false)},
	}
	if d := fieldDiff(want, *Defaults()); d != "" {
		t.Errorf("Defaults() (-want +got):\n%s", d)
	}
}

// TestShippedConfig checks config.json at the repository root: it loads,
// is what the binary embeds, documents every key, and sets what the
// design says.
func TestShippedConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, netcluster.DefaultConfig) {
		t.Error("netcluster.DefaultConfig differs from config.json")
	}
	c, err := Parse("config.json", data)
	if err != nil {
		t.Fatal(err)
	}
	want := *Defaults()
	want.Channels = map[string]ChannelConfig{
		ControlChannel: chanRule(ControlChannel, "", false, false, false),
		"A":            chanRule("A", ".*", false, false, true),
		"B":            chanRule("B", ".*", false, false, true),
	}
	if d := fieldDiff(want, *withoutRegexps(t, c)); d != "" {
		t.Errorf("config.json (-want +got):\n%s", d)
	}
	t.Run("every key has a comment", func(t *testing.T) {
		checkCommented(t, data)
	})
	t.Run("every key is written out with its default", func(t *testing.T) {
		comments := keyComments(t, data)
		var keys []schemaKey
		for i := range settings {
			keys = append(keys, schemaKeyOf(&settings[i]))
		}
		for i := range ruleKeys {
			keys = append(keys, schemaKeyOf(&ruleKeys[i]))
		}
		for i := range natsKeys {
			keys = append(keys, schemaKeyOf(&natsKeys[i]))
		}
		for _, k := range keys {
			comment, ok := comments[k.name]
			if !ok {
				t.Errorf("config.json does not show %q, not even in a comment", k.name)
				continue
			}
			if !strings.Contains(strings.ToLower(comment), strings.ToLower(k.wantDefault)) {
				t.Errorf("config.json: the comment of %q does not say %q:\n%s", k.name, k.wantDefault, comment)
			}
		}
	})
}

// schemaKey is what TestShippedConfig needs of a key of the schema.
type schemaKey struct{ name, wantDefault string }

// schemaKeyOf says how config.json must name the key's default: as the
// file spells it, or for a key shown otherwise (socket: "" is the
// platform's default), in words after "Default:".
func schemaKeyOf[T any](k *key[T]) schemaKey {
	def, _ := json.Marshal(k.def)
	if k.show != nil {
		return schemaKey{k.name, "Default:"}
	}
	return schemaKey{k.name, "Default " + string(def)}
}

// keyComments returns, for every key config.json shows (even in a
// comment, as "key": value), the comment above its first occurrence,
// without the comment markers and with runs of spaces made one.
func keyComments(t *testing.T, data []byte) map[string]string {
	out := make(map[string]string)
	var comment []string
	for _, line := range strings.Split(string(data), "\n") {
		text := strings.TrimSpace(line)
		rest, isComment := strings.CutPrefix(text, "//")
		if m := keyInLine.FindStringSubmatch(rest); m != nil {
			if _, seen := out[m[1]]; !seen {
				out[m[1]] = strings.Join(strings.Fields(strings.Join(comment, " ")), " ")
			}
			comment = nil
			continue
		}
		if isComment {
			comment = append(comment, rest)
		} else {
			comment = nil
		}
	}
	if len(out) == 0 {
		t.Fatal("config.json shows no keys")
	}
	return out
}

// keyInLine matches a line that sets a key, such as `"ttl": 1,`.
var keyInLine = regexp.MustCompile(`^\s*"([a-z]+)":`)

// checkCommented checks that a comment comes before every key of the
// HuJSON data.
func checkCommented(t *testing.T, data []byte) {
	v, err := hujson.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for v := range v.All() {
		obj, ok := v.Value.(*hujson.Object)
		if !ok {
			continue
		}
		for _, m := range obj.Members {
			if !bytes.Contains(m.Name.BeforeExtra, []byte("//")) {
				line, _ := lineColumn(data, m.Name.StartOffset)
				t.Errorf("config.json:%d: key %s has no comment above it", line, m.Name.Value)
			}
		}
	}
}

func TestChannelNamesAndTargets(t *testing.T) {
	c, err := Parse("test.json", []byte(`{"channels": {
		"b": {"propagatetochannels": ".*"},
		"a": {"propagatetochannels": "b|c"},
		"c": {"propagatetochannels": "b"},
		"ab": {"propagatetochannels": "a"},
		"d": {"propagatetochannels": "(?i)A.*"},
		"e": {},
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.ChannelNames(), []string{"a", "ab", "b", "c", "control", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("ChannelNames() = %q, want %q", got, want)
	}
	tests := []struct {
		from string
		want []string
	}{
		{"b", []string{"a", "ab", "c", "d", "e"}}, // all but itself and control
		{"a", []string{"b", "c"}},
		{"c", []string{"b"}},
		{"ab", []string{"a"}},      // anchored: "a" does not match "ab"
		{"d", []string{"a", "ab"}}, // flags work inside the anchors
		{"e", nil},                 // propagates nowhere
		{"control", nil},           // the added control channel does not propagate
		{"nosuchchannel", nil},     // unknown
	}
	for _, tc := range tests {
		t.Run(tc.from, func(t *testing.T) {
			if got := c.Targets(tc.from); !slices.Equal(got, tc.want) {
				t.Errorf("Targets(%q) = %q, want %q", tc.from, got, tc.want)
			}
		})
	}
}

func TestSocketPath(t *testing.T) {
	tests := []struct {
		name   string
		xdg    string
		socket string
		want   string
	}{
		{"template", "/run/user/1000", "/var/run/netcluster-{channel}", "/var/run/netcluster-A"},
		{"placeholder twice", "", "/srv/{channel}/{channel}.sock", "/srv/A/A.sock"},
		{"XDG_RUNTIME_DIR", "/run/user/1000", "", "/run/user/1000/netcluster/A.sock"},
		{"XDG_RUNTIME_DIR with a trailing slash", "/run/user/1000/", "", "/run/user/1000/netcluster/A.sock"},
		{"XDG_RUNTIME_DIR unset", "", "", fmt.Sprintf("/tmp/netcluster-%d/A.sock", os.Getuid())},
		{"XDG_RUNTIME_DIR relative", "run", "", fmt.Sprintf("/tmp/netcluster-%d/A.sock", os.Getuid())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_RUNTIME_DIR", tc.xdg)
			c := Defaults()
			c.Socket = tc.socket
			if got := c.SocketPath("A"); got != tc.want {
				t.Errorf("SocketPath(%q) = %q, want %q", "A", got, tc.want)
			}
		})
	}
}

func TestConfigErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"one problem", "{\n  \"port\": \"x\"}", `c.json:2:11: port: want an integer, got "x"`},
		{"syntax error", "{\n  \"port\" 1}", `c.json:2:10: invalid character '1' after object name`},
		{"byte order mark keeps columns", "\uFEFF{\"port\": 0}", "c.json:1:13: port: 0 is out of range 1..65535"},
		{"several problems", "{\"port\": 0,\n\"ttl\": 300}", "c.json: 2 problems\n" +
			"c.json:1:10: port: 0 is out of range 1..65535\n" +
			"c.json:2:8: ttl: 300 is out of range 0..255"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.json", []byte(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestParseLeavesInputAlone(t *testing.T) {
	in := []byte("\uFEFF// comment\n{\"port\": 4455, /* comment */ \"channels\": {\"A\": {},},}")
	orig := bytes.Clone(in)
	if _, err := Parse("test.json", in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, orig) {
		t.Errorf("Parse changed its input:\n-%q\n+%q", orig, in)
	}
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nosuch.json")
	_, err := LoadFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile(%s) = %v, want an error wrapping fs.ErrNotExist", path, err)
	}
	if err != nil && !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestRedacted(t *testing.T) {
	c, err := Parse("test.json", []byte(`{"key": "hunter2", "channels": {"A": {}}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if r.Key != "(set)" {
		t.Errorf("Redacted().Key = %q, want %q", r.Key, "(set)")
	}
	if c.Key != "hunter2" {
		t.Errorf("Redacted changed the original's Key to %q", c.Key)
	}
	delete(r.Channels, "A")
	if _, ok := c.Channels["A"]; !ok {
		t.Error("Redacted shares its Channels map with the original")
	}
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprint(*c)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("printed config shows the key: %s", s)
		}
	}
	if r := Defaults().Redacted(); r.Key != "" {
		t.Errorf("Redacted().Key = %q without a key, want \"\"", r.Key)
	}
}

// TestSchemaCoversConfig: every field of Config and ChannelConfig that a
// file sets is the field of exactly one key of the schema, so that the
// loader, showconfig and the reload's diff, which read the schema, all
// know it.
func TestSchemaCoversConfig(t *testing.T) {
	t.Run("Config", func(t *testing.T) {
		checkCovered(t, settings, map[string]bool{"File": true, "Channels": true, "NATS": true})
	})
	t.Run("NATSConfig", func(t *testing.T) {
		checkCovered(t, natsKeys, nil)
	})
	t.Run("ChannelConfig", func(t *testing.T) {
		checkCovered(t, ruleKeys, map[string]bool{"Name": true, "Propagate": true, "AllowSet": true, "PublishSet": true})
	})
}

func checkCovered[T any](t *testing.T, keys []key[T], notKeys map[string]bool) {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	owner := make(map[uintptr]string) // field address -> key
	for i := range keys {
		k := &keys[i]
		addr := reflect.ValueOf(k.field(&v)).Pointer()
		if other, dup := owner[addr]; dup {
			t.Errorf("keys %q and %q have the same field", other, k.name)
		}
		owner[addr] = k.name
		if got := fmt.Sprintf("%T", k.value(&v)); !typeFits(k.typ, got) {
			t.Errorf("key %q: a field of type %s does not hold what the file spells as type %d", k.name, got, k.typ)
		}
	}
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		_, isKey := owner[rv.Field(i).Addr().Pointer()]
		switch {
		case notKeys[f.Name] && isKey:
			t.Errorf("field %s is a key's, but the test says it is none", f.Name)
		case !notKeys[f.Name] && !isKey:
			t.Errorf("field %s is no key's field: add a key for it to the schema", f.Name)
		}
	}
}

// typeFits reports whether a field of Go type goType holds a value of
// file type typ.
func typeFits(typ fileType, goType string) bool {
	want := map[fileType]string{tBool: "bool", tInt: "int", tString: "string", tRegexp: "string",
		tDuration: "time.Duration", tMode: "fs.FileMode", tStrings: "string",
		tList: "string"} // a list's value is its entries joined, to compare
	return want[typ] == goType
}
