package wire

import "fmt"

// ResumeVersion is the first protocol version in which a client may
// resume (PROTOCOL.md § 5.2): its Hello may say where it stands in the
// channel's retained events, the Welcome says where it stands now and
// what it missed, and the server drains a connection before it stops
// (the Drain frame).
const ResumeVersion = 3

// MaxOwn is the most earlier client ids a Hello may name in Own.
const MaxOwn = 16

// Cursor is where a client stands in a channel's retained events: the
// ring it heard them from, and the last one it received there.
type Cursor struct {
	// Epoch names the ring: a server draws a new one each time a
	// channel opens. Zero means the client has no cursor.
	Epoch [16]byte
	// After is the id of the last event the client received from that
	// ring; zero means none since the ring began.
	After [16]byte
}

// IsZero reports whether the cursor is unset: the client is not
// resuming.
func (c Cursor) IsZero() bool { return c.Epoch == [16]byte{} }

// Fields a Hello and a Welcome of version 3 may carry after those of
// version 1.
const (
	helloResumeFields   = 4 // resume epoch, resume after, since, own
	welcomeResumeFields = 3 // epoch, from, missed
)

// resumes reports whether h carries the version 3 fields: a client
// writes them only when it asks for something.
func (h *Hello) resumes() bool {
	return h.Version >= ResumeVersion && (!h.Resume.IsZero() || h.Since > 0 || len(h.Own) > 0) || h.declares()
}

// declares reports whether h carries the version 4 field, which follows
// the version 3 ones.
func (h *Hello) declares() bool {
	return h.Version >= InterestVersion && h.Interest != nil
}

// resumes reports whether w carries the version 3 fields: only when the
// channel retains events.
func (w *Welcome) resumes() bool {
	return w.Version >= ResumeVersion && w.Epoch != [16]byte{}
}

func appendHelloResume(dst []byte, h *Hello) []byte {
	dst = appendOptID(dst, h.Resume.Epoch)
	dst = appendOptID(dst, h.Resume.After)
	dst = appendUint(dst, h.Since)
	dst = appendArrayHeader(dst, len(h.Own))
	for _, id := range h.Own {
		dst = appendBin(dst, id[:])
	}
	return dst
}

func appendWelcomeResume(dst []byte, w *Welcome) []byte {
	dst = appendBin(dst, w.Epoch[:])
	dst = appendOptID(dst, w.From)
	return appendUint(dst, w.Missed)
}

// decodeHelloResume reads the version 3 fields of a Hello, those of
// them that are there, and returns how many extra fields are left.
func decodeHelloResume(r *reader, h *Hello, extra int) int {
	if extra < helloResumeFields {
		return extra // a client that asks for nothing writes none
	}
	h.Resume.Epoch = r.optUUID16("resume epoch")
	h.Resume.After = r.optUUID16("resume after")
	h.Since = r.uint("since")
	at := r.off
	n := r.arrayLen("own")
	if r.err == nil && n > MaxOwn {
		r.off = at
		r.fail(fmt.Sprintf("own: %d ids, at most %d", n, MaxOwn))
	}
	for i := 0; i < n && r.err == nil; i++ {
		h.Own = append(h.Own, r.uuid16("own id"))
	}
	if h.Resume.IsZero() && h.Resume.After != [16]byte{} && r.err == nil {
		r.fail("resume after an event without a resume epoch")
	}
	return extra - helloResumeFields
}

// decodeWelcomeResume reads the version 3 fields of a Welcome, when it
// has them, and returns how many extra fields are left.
func decodeWelcomeResume(r *reader, w *Welcome, extra int) int {
	if extra < welcomeResumeFields {
		return extra // a channel that retains nothing writes none
	}
	w.Epoch = r.uuid16("epoch")
	w.From = r.optUUID16("from")
	w.Missed = r.uint("missed")
	return extra - welcomeResumeFields
}

// AppendDrain appends a Drain frame, [7]. From the server it says: I am
// stopping; send nothing more, and answer with a Drain. From the client,
// that answer: nothing follows it on this connection.
func AppendDrain(dst []byte) []byte {
	dst, start := beginFrame(dst, FrameDrain, 0)
	return endFrame(dst, start)
}

// DecodeDrain checks a Drain frame body, as DecodePing does a Ping.
func DecodeDrain(body []byte) error {
	r := &reader{b: body}
	return closeFrame(r, openFrame(r, FrameDrain, 0))
}
