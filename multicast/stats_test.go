package multicast_test

import (
	"reflect"
	"testing"

	"github.com/netcluster/netcluster/multicast"
)

// TestStatsDropped holds Dropped to the fields that the tags of Stats
// show as dropped: each of them, and no other, counts in it.
func TestStatsDropped(t *testing.T) {
	typ := reflect.TypeFor[multicast.Stats]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Kind() != reflect.Uint64 {
			continue
		}
		var s multicast.Stats
		reflect.ValueOf(&s).Elem().Field(i).SetUint(1)
		want := uint64(0)
		if f.Tag.Get("stats") == "dropped" {
			want = 1
		}
		if got := s.Dropped(); got != want {
			t.Errorf("with %s = 1, Dropped() = %d; its stats tag is %q", f.Name, got, f.Tag.Get("stats"))
		}
	}
}
