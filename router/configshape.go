package router

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tailscale/hujson"
)

// maxKeyLen is how much of a key a message shows: a whole channel name.
const maxKeyLen = 64

// slot is where a member's value goes: its Go type, and how the file
// should spell the value when the type does not tell (a want tag).
type slot struct {
	typ  reflect.Type
	want string
}

// kindWants says how the file spells a value of each kind.
var kindWants = map[reflect.Kind]string{
	reflect.Bool:   "true or false",
	reflect.Int:    "an integer",
	reflect.String: "a string",
	reflect.Struct: "an object",
	reflect.Map:    "an object",
}

// object checks that v is an object whose members fit t, a struct or a
// map type. It reports every member that does not fit and drops it, so
// that what remains decodes, and records where each kept scalar starts.
func (c *checker) object(key string, v *hujson.Value, t reflect.Type) bool {
	obj, ok := v.Value.(*hujson.Object)
	if !ok {
		if key == "" {
			c.add(v.StartOffset, "", "want an object at the top level, got %s", describeValue(v))
		} else {
			c.add(v.StartOffset, key, "want an object, got %s", describeValue(v))
		}
		return false
	}
	first := make(map[string]int) // name -> offset of its first occurrence
	kept := obj.Members[:0]
	for i := range obj.Members {
		if c.member(key, t, &obj.Members[i], first) {
			kept = append(kept, obj.Members[i])
		}
	}
	obj.Members = kept
	return true
}

// member checks one member of an object of type t and reports whether it
// fits.
func (c *checker) member(parent string, t reflect.Type, m *hujson.ObjectMember, first map[string]int) bool {
	name := m.Name.Value.(hujson.Literal).String()
	key := clipText(name, maxKeyLen)
	if parent != "" {
		key = parent + "." + key
	}
	s, problem := slotOf(t, name)
	if problem != "" {
		c.add(m.Name.StartOffset, key, "%s", problem)
		return false
	}
	if off, dup := first[name]; dup {
		line, col := lineColumn(c.src, off)
		c.add(m.Name.StartOffset, key, "duplicate key (first at line %d, column %d)", line, col)
		return false
	}
	first[name] = m.Name.StartOffset
	return c.value(key, &m.Value, s)
}

// slotOf finds where member name of an object of type t goes, or says
// why it has no place.
func slotOf(t reflect.Type, name string) (slot, string) {
	if t.Kind() == reflect.Map {
		return slot{typ: t.Elem()}, nameProblem(name)
	}
	for i := range t.NumField() {
		if f := t.Field(i); jsonName(f) == name {
			return slot{typ: f.Type, want: f.Tag.Get("want")}, ""
		}
	}
	return slot{}, unknownKey(t, name)
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// value checks that v fits s, and records where it starts if so.
func (c *checker) value(key string, v *hujson.Value, s slot) bool {
	t := s.typ
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct || t.Kind() == reflect.Map {
		return c.object(key, v, t)
	}
	lit, _ := v.Value.(hujson.Literal)
	switch fit := literalFits(lit, t.Kind()); {
	case fit == nil:
		c.at[key] = v.StartOffset
		return true
	case errors.Is(fit, strconv.ErrRange):
		c.add(v.StartOffset, key, "%s is out of range", clipText(string(lit), 40))
	case errors.Is(fit, errBadUTF8):
		c.add(v.StartOffset, key, "invalid UTF-8 in the string")
	default:
		c.add(v.StartOffset, key, "want %s, got %s", cmp.Or(s.want, kindWants[t.Kind()]), describeValue(v))
	}
	return false
}

// Why a literal does not fit a kind of value.
var (
	errMismatch = errors.New("mismatch")
	errBadUTF8  = errors.New("invalid UTF-8")
)

// literalFits reports whether lit, nil when the value is an object or array,
// can be decoded into a value of kind k. An interface takes a boolean or
// a string: the one such field is propagatetochannels.
func literalFits(lit hujson.Literal, k reflect.Kind) error {
	switch lit.Kind() {
	case 't', 'f':
		if k == reflect.Bool || k == reflect.Interface {
			return nil
		}
	case '"':
		if k == reflect.String || k == reflect.Interface {
			if !utf8.Valid(lit) {
				return errBadUTF8 // encoding/json would make it U+FFFD
			}
			return nil
		}
	case '0':
		if k == reflect.Int {
			if _, err := strconv.ParseInt(string(lit), 10, 0); err != nil {
				return err
			}
			return nil
		}
	}
	return errMismatch
}

// describeValue shows a value in a message, shortened.
func describeValue(v *hujson.Value) string {
	switch x := v.Value.(type) {
	case *hujson.Object:
		return "an object"
	case *hujson.Array:
		return "an array"
	case hujson.Literal:
		return clipText(string(x), 40)
	}
	return "nothing"
}

// clipText shortens s to about n bytes, at a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// unknownKey says that name is no key of t, with the nearest key if one
// is close, else the list.
func unknownKey(t reflect.Type, name string) string {
	var keys []string
	for i := range t.NumField() {
		keys = append(keys, jsonName(t.Field(i)))
	}
	if near := nearest(name, keys); near != "" {
		return fmt.Sprintf("unknown key %q; did you mean %q?", name, near)
	}
	return fmt.Sprintf("unknown key %q; known keys: %s", clipText(name, 40), strings.Join(keys, ", "))
}

// nearest returns the key that name most likely misspells: one equal but
// for case, or at most two edits away. It returns "" if none is.
func nearest(name string, keys []string) string {
	name = strings.ToLower(name)
	best, bestDist := "", 3
	for _, k := range keys {
		if d := editDistance(name, k, bestDist); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance returns the Levenshtein distance between a and b, or limit
// if it is at least limit.
func editDistance(a, b string, limit int) int {
	if len(a)-len(b) >= limit || len(b)-len(a) >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
