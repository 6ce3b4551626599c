package wire

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxEventName is the longest event name, in bytes.
const MaxEventName = 1024

// ErrEventName reports an event name that is empty, longer than
// MaxEventName or not UTF-8.
var ErrEventName = errors.New("invalid event name")

// ErrZeroID reports an event whose id or sender is the zero uuid. The
// servers drop an event whose id they delivered already, so that after
// the first, events of the zero id would be lost; and a reply to the zero
// sender would reach nobody.
var ErrZeroID = errors.New("the event's id or sender is the zero uuid")

// CheckEventIDs checks that an event has an id and a sender: neither is
// the zero uuid. Its error matches ErrZeroID. The servers check every
// event from a client, from another server over multicast and in a NATS
// pack.
func CheckEventIDs(h *EventHeader) error {
	if h.ID == [16]byte{} || h.Sender == [16]byte{} {
		return ErrZeroID
	}
	return nil
}

// CheckEventName checks the event-name rule, the one both sides hold an
// event to: 1 to MaxEventName bytes of UTF-8. Its error matches
// ErrEventName and quotes at most the name's first 32 bytes.
func CheckEventName[T string | []byte](name T) error {
	if len(name) > 0 && len(name) <= MaxEventName && validUTF8(name) {
		return nil
	}
	return fmt.Errorf("%w %s of %d bytes: want 1 to %d bytes of UTF-8", ErrEventName, Clip(string(name), 32), len(name), MaxEventName)
}

func validUTF8[T string | []byte](s T) bool {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return true // ASCII, as most names are: no conversion to an interface
	}
	switch s := any(s).(type) {
	case string:
		return utf8.ValidString(s)
	case []byte:
		return utf8.Valid(s)
	}
	return false
}

// Clip quotes s for a message, cut to at most n bytes, with "…" after
// the quote when it was longer: a message never carries a whole
// oversized name.
func Clip(s string, n int) string {
	if c := Cut(s, n); len(c) < len(s) {
		return strconv.Quote(c) + "…"
	}
	return strconv.Quote(s)
}

// Cut cuts s to at most n bytes, at a character boundary.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ReplySuffix is appended to a request's event name to name its reply:
// the original netcluster's control requests answer "X" with
// "X-response".
const ReplySuffix = "-response"
