package multicast

import "time"

// Pacing (Config.MaxRate). The writer spends tokens, in bytes, for
// every datagram it writes, data, NAKs, repairs and statuses alike, and
// sleeps off what it spent beyond them. Repairs are bounded besides by
// the repair bucket, at most a quarter of MaxRate, so that resending
// cannot take the whole rate from new data.

// rateBucket paces the writer. It belongs to the writer goroutine.
type rateBucket struct {
	rate   float64 // bytes per second; 0: unpaced
	burst  float64
	tokens float64
	at     time.Time
}

// maxPaceSleep bounds one sleep of the writer, so that Close is never
// kept waiting for long.
const maxPaceSleep = 20 * time.Millisecond

func newRateBucket(rate int) rateBucket {
	// A burst of 10 ms of the rate keeps sleeps long enough for the
	// system's timers to be accurate, and the rate smooth.
	return rateBucket{rate: float64(rate), burst: max(2*MaxDatagram, float64(rate)/100)}
}

// repairShare is the part of MaxRate that repairs may take at most.
const repairShare = 4

// pace spends the bytes of dgs, and sleeps until they are paid for.
func (l *Link) pace(dgs [][]byte) {
	b := &l.rate
	if b.rate == 0 || len(dgs) == 0 {
		return
	}
	n := 0
	for _, d := range dgs {
		n += len(d)
	}
	now := time.Now()
	if b.at.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	}
	b.at = now
	b.tokens -= float64(n)
	for b.tokens < 0 && !l.stopped() {
		d := min(maxPaceSleep, time.Duration(-b.tokens/b.rate*float64(time.Second)))
		time.Sleep(d)
		now = time.Now()
		b.tokens += now.Sub(b.at).Seconds() * b.rate
		b.at = now
	}
}
