package router_test

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/router"
)

// answerTypes are the answers of the control requests, by request.
// showconfig's configuration is a map under the file's keys, which § 12.1
// lists and TestShowconfigRoundTrip holds to the schema.
var answerTypes = map[string]reflect.Type{
	"showconfig":   reflect.TypeFor[router.ShowConfigAnswer](),
	"reloadconfig": reflect.TypeFor[router.ReloadAnswer](),
	"showchannel":  reflect.TypeFor[router.ChannelAnswer](),
	"showclient":   reflect.TypeFor[router.ShowClientAnswer](),
	"clientcount":  reflect.TypeFor[router.ClientCountAnswer](),
	"channels":     reflect.TypeFor[router.ChannelsAnswer](),
	"peers":        reflect.TypeFor[router.PeersAnswer](),
	"stats":        reflect.TypeFor[router.StatsAnswer](),
	"loglevel":     reflect.TypeFor[router.LogLevelAnswer](),
	"shutdown":     reflect.TypeFor[router.OKAnswer](),
	"restart":      reflect.TypeFor[router.OKAnswer](),
}

// answerFields walks t and calls field for each field that an answer
// shows, under the path of Go names that leads to it.
func answerFields(t reflect.Type, path string, field func(path string, f reflect.StructField)) {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		answerFields(t.Elem(), path, field)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			if !f.Anonymous {
				field(path+"."+f.Name, f)
			}
			answerFields(f.Type, path+"."+f.Name, field)
		}
	}
}

// TestControlAnswersDocumented holds PROTOCOL.md § 12 to the answer
// types: every field an answer shows is named there, and its json and
// msgpack tags agree, since the server encodes with msgpack and reads
// json tags where msgpack has none.
func TestControlAnswersDocumented(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sect, ok := strings.Cut(string(doc), "\n## 12. ")
	if !ok {
		t.Fatal("PROTOCOL.md has no section 12")
	}
	sect, _, _ = strings.Cut(sect, "\n## 13. ")

	for _, name := range router.ControlCommands() {
		if _, ok := answerTypes[name]; !ok {
			t.Errorf("control request %s: answerTypes does not say what it answers", name)
		}
	}
	// The network part of stats is built from the tags of NetStats:
	// its fields are those of NetworkAnswerType.
	types := map[string]reflect.Type{"ErrorAnswer": reflect.TypeFor[router.ErrorAnswer](), "NetworkAnswer": router.NetworkAnswerType()}
	for _, name := range slices.Sorted(maps.Keys(answerTypes)) {
		if typ := answerTypes[name]; typ != nil {
			types[typ.Name()] = typ
		}
	}
	if n := router.NetworkAnswerType().NumField(); n < 40 {
		t.Errorf("the network part of stats has %d fields, want at least 40", n)
	}
	for _, name := range slices.Sorted(maps.Keys(types)) {
		answerFields(types[name], name, func(path string, f reflect.StructField) {
			js, mp := f.Tag.Get("json"), f.Tag.Get("msgpack")
			if js != mp {
				t.Errorf("%s: json tag %q, msgpack tag %q: they must agree", path, js, mp)
			}
			key, _, _ := strings.Cut(js, ",")
			if key == "" {
				t.Errorf("%s: no json tag names it", path)
				return
			}
			if !strings.Contains(sect, "`"+key+"`") {
				t.Errorf("%s: PROTOCOL.md § 12 does not name `%s`", path, key)
			}
		})
	}
}

// TestNetworkAnswerJSON: as JSON too, the network part of stats shows
// connected alone while the server is off the network, and every
// counter while it is on.
func TestNetworkAnswerJSON(t *testing.T) {
	off, err := json.Marshal(router.NewNetworkAnswer(router.NetStats{}))
	if err != nil || string(off) != `{"connected":false}` {
		t.Errorf("off the network: %s, %v; want {\"connected\":false}", off, err)
	}
	var st router.NetStats
	st.Connected, st.Delivered, st.Link.Truncated, st.Link.BadMagic, st.Link.QueuePeak = true, 3, 1, 2, 7
	on, err := json.Marshal(router.NewNetworkAnswer(st))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(on, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"connected": true, "delivered": 3.0, "dropped": 3.0, "queue_peak": 7.0, "lost": 0.0}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("on the network: %s = %v, want %v", k, m[k], v)
		}
	}
	if want := router.NetworkAnswerType().NumField(); len(m) != want {
		t.Errorf("on the network: %s; want all %d fields", on, want)
	}
}
