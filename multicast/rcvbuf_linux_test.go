package multicast

import (
	"net"
	"strings"
	"testing"
)

// TestReadBufferReportsTheCap asks for a receive buffer far over any
// usual net.core.rmem_max: what the socket got must be reported, and
// when it is much less than asked, the sysctl that raises it named.
func TestReadBufferReportsTheCap(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const asked = 1 << 30
	got, raise := setReadBuffer(conn, asked)
	t.Logf("asked %d, got %d, raise %q", asked, got, raise)
	switch {
	case got <= 0:
		t.Errorf("got %d bytes", got)
	case got < asked/2 && !strings.Contains(raise, "net.core.rmem_max"):
		t.Errorf("got %d of %d bytes, but the hint %q does not name net.core.rmem_max", got, asked, raise)
	case got >= asked/2 && raise != "":
		t.Errorf("got %d of %d bytes, yet hints %q", got, asked, raise)
	}
	if _, raise := setReadBuffer(conn, 4096); raise != "" {
		t.Errorf("a 4 KiB buffer: hint %q", raise)
	}
}
