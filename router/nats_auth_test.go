package router_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSAuth: the link authenticates as the nats object says, each
// way nats.go offers, and two servers bridge through a NATS server that
// requires it.
func TestNATSAuth(t *testing.T) {
	dir := t.TempDir()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	pki := newTestPKI(t, dir)

	tests := []struct {
		name   string
		server func(*server.Options)
		extra  string // members of the nats object
	}{
		{"user and password", func(o *server.Options) { o.Username, o.Password = "nc", "s3cret" },
			`"user": "nc", "password": "s3cret"`},
		{"token", func(o *server.Options) { o.Authorization = "t0ken" }, `"token": "t0ken"`},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
			fmt.Sprintf(`"nkeyfile": %q`, seedFile)},
		{"tls with a client certificate", func(o *server.Options) { o.TLSConfig, o.TLS, o.TLSVerify = pki.serverTLS(), true, true },
			fmt.Sprintf(`"tlsca": %q, "tlscert": %q, "tlskey": %q`, pki.ca, pki.cert, pki.key)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := startNATS(t, 0, tt.server)
			url := ns.ClientURL()
			s1 := routertest.NewServer(t, natsMembers(url, tt.extra, bridged))
			s2 := routertest.NewServer(t, natsMembers(url, tt.extra, bridged))
			waitNATS(t, s1, s2)
			probe(t, s1.Dial(t, "A"), routertest.Record(t, s2.Dial(t, "A"), ".*"))

			// Without the credentials the server starts, and says why it
			// does not connect.
			bad := routertest.NewServer(t, natsMembers(url, "", bridged))
			routertest.WaitFor(t, "a log of the refused connection", func() bool {
				return logCount(bad, "NATS") > 1 && !natsStats(t, bad).Connected &&
					(logCount(bad, "uthorization") > 0 || logCount(bad, "tls") > 0 || logCount(bad, "TLS") > 0)
			})
		})
	}
}

// testPKI is a CA made for the test, and a server and a client
// certificate it signed, as files.
type testPKI struct {
	ca, cert, key         string // the CA's certificate, the client's certificate and key
	serverCert, serverKey string
	pool                  *x509.CertPool
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &testPKI{ca: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	writePEM(t, p.ca, "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.cert, p.key = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// serverTLS is the NATS server's TLS configuration: its certificate,
// and client certificates required, checked against the CA.
func (p *testPKI) serverTLS() *tls.Config {
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		panic(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
