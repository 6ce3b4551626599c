package router

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tailscale/hujson"
)

// maxKeyLen is how much of a key a message shows: a whole channel name.
const maxKeyLen = 64

// shape is what an object of the file holds.
type shape int

const (
	topShape      shape = iota // the settings and "channels"
	channelsShape              // channel name -> rule
	ruleShape                  // the keys of one rule
	natsShape                  // the keys of the nats object
)

// slot is where a member's value goes: the type the file spells it with,
// how to say so in a message, and for an object, its shape.
type slot struct {
	typ    fileType
	want   string
	sub    shape
	secret bool // a problem with the value never quotes it: describeKind
}

// object checks that v is an object whose members fit sh. It reports
// every member that does not fit and drops it, so that what remains
// decodes, and records where each kept scalar starts.
func (c *checker) object(key string, v *hujson.Value, sh shape) bool {
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
		if c.member(key, sh, &obj.Members[i], first) {
			kept = append(kept, obj.Members[i])
		}
	}
	obj.Members = kept
	return true
}

// member checks one member of an object of shape sh and reports whether
// it fits.
func (c *checker) member(parent string, sh shape, m *hujson.ObjectMember, first map[string]int) bool {
	name := m.Name.Value.(hujson.Literal).String()
	key := clipText(name, maxKeyLen)
	if parent != "" {
		key = parent + "." + key
	}
	s, problem := sh.slotOf(name)
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

// slotOf finds where member name of an object of shape sh goes, or says
// why it has no place.
func (sh shape) slotOf(name string) (slot, string) {
	switch sh {
	case channelsShape:
		return slot{typ: tObject, sub: ruleShape}, nameProblem(name)
	case ruleShape:
		if i := indexOf(ruleKeys, name); i >= 0 {
			return slot{typ: ruleKeys[i].typ, want: ruleKeys[i].want()}, ""
		}
	case natsShape:
		if i := indexOf(natsKeys, name); i >= 0 {
			return slot{typ: natsKeys[i].typ, want: natsKeys[i].want(), secret: natsKeys[i].secret}, ""
		}
	default:
		if name == channelsKey {
			return slot{typ: tObject, sub: channelsShape}, ""
		}
		if name == natsKey {
			return slot{typ: tObject, sub: natsShape}, ""
		}
		if i := indexOf(settings, name); i >= 0 {
			return slot{typ: settings[i].typ, want: settings[i].want(), secret: settings[i].secret}, ""
		}
	}
	return slot{}, unknownKey(sh.keys(), name)
}

// keys lists the keys an object of shape sh may hold, in table order.
func (sh shape) keys() []string {
	var keys []string
	if sh == ruleShape {
		for i := range ruleKeys {
			keys = append(keys, ruleKeys[i].name)
		}
		return keys
	}
	if sh == natsShape {
		for i := range natsKeys {
			keys = append(keys, natsKeys[i].name)
		}
		return keys
	}
	for i := range settings {
		keys = append(keys, settings[i].name)
	}
	return append(keys, natsKey, channelsKey)
}

// indexOf returns the index of the key called name, or -1.
func indexOf[T any](keys []key[T], name string) int {
	for i := range keys {
		if keys[i].name == name {
			return i
		}
	}
	return -1
}

// value checks that v fits s, and records where it starts if so.
func (c *checker) value(key string, v *hujson.Value, s slot) bool {
	if s.typ == tObject {
		return c.object(key, v, s.sub)
	}
	if s.typ == tList {
		return c.list(key, v, s)
	}
	if arr, ok := v.Value.(*hujson.Array); ok && s.typ == tStrings {
		for i := range arr.Elements {
			if lit, _ := arr.Elements[i].Value.(hujson.Literal); literalFits(lit, tString) != nil {
				c.add(arr.Elements[i].StartOffset, key, "want %s, got an array holding %s", s.want, describeValue(&arr.Elements[i]))
				return false
			}
		}
		c.at[key] = v.StartOffset
		return true
	}
	lit, _ := v.Value.(hujson.Literal)
	switch fit := literalFits(lit, s.typ); {
	case fit == nil:
		c.at[key] = v.StartOffset
		return true
	case errors.Is(fit, strconv.ErrRange):
		c.add(v.StartOffset, key, "%s is out of range", clipText(string(lit), 40))
	case errors.Is(fit, errBadUTF8):
		c.add(v.StartOffset, key, "invalid UTF-8 in the string")
	default:
		got := describeValue(v)
		if s.secret {
			got = describeKind(v)
		}
		c.add(v.StartOffset, key, "want %s, got %s", s.want, got)
	}
	return false
}

// Why a literal does not fit a kind of value.
var (
	errMismatch = errors.New("mismatch")
	errBadUTF8  = errors.New("invalid UTF-8")
)

// literalFits reports whether lit, nil when the value is an object or array,
// is a value of type t.
func literalFits(lit hujson.Literal, t fileType) error {
	switch lit.Kind() {
	case 't', 'f':
		if t == tBool || t == tRegexp {
			return nil
		}
	case '"':
		if t == tString || t == tDuration || t == tMode || t == tRegexp || t == tStrings {
			if !utf8.Valid(lit) {
				return errBadUTF8 // encoding/json would make it U+FFFD
			}
			return nil
		}
	case '0':
		if t == tInt {
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

// describeKind says what kind of value v is, without quoting it: for
// the values of secret keys.
func describeKind(v *hujson.Value) string {
	lit, ok := v.Value.(hujson.Literal)
	if !ok {
		return describeValue(v)
	}
	switch lit.Kind() {
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '0':
		return "a number"
	}
	return "a value that is not shown"
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

// unknownKey says that name is none of keys, with the nearest key if one
// is close, else the list.
func unknownKey(keys []string, name string) string {
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
