package router

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// natsDefaults is the nats object of a file that leaves it out.
var natsDefaults = NATSConfig{Prefix: "netcluster", Buffer: 8 << 20, PendingMsgs: 65536, PendingBytes: 64 << 20, MaxAge: time.Hour, MaxBytes: 64 << 20, CatchUp: 5 * time.Second, FlowControl: "min", WriteTimeout: 10 * time.Second}

func TestNATSConfig(t *testing.T) {
	tests := []struct {
		name, file string
		want       NATSConfig
	}{
		{"a list of URLs", `{"nats": {"url": ["nats://a:4222", " tls://b:4223 "]}}`,
			NATSConfig{URL: "nats://a:4222,tls://b:4223", Prefix: "netcluster", Buffer: 8 << 20}},
		{"one string, comma separated", `{"nats": {"url": "a:4222,nats://b:4222", "prefix": "x.y", "buffer": 0}}`,
			NATSConfig{URL: "a:4222,nats://b:4222", Prefix: "x.y"}},
		{"user and password", `{"nats": {"url": "nats://a", "user": "u", "password": "p"}}`,
			NATSConfig{URL: "nats://a", User: "u", Password: "p", Prefix: "netcluster", Buffer: 8 << 20}},
		{"jetstream", `{"nats": {"url": "a", "jetstream": true, "durable": "site-a_1"}}`,
			NATSConfig{URL: "a", Prefix: "netcluster", Buffer: 8 << 20, JetStream: true, Durable: "site-a_1"}},
		{"flowcontrol none", `{"nats": {"url": "a", "flowcontrol": "none"}}`,
			NATSConfig{URL: "a", Prefix: "netcluster", Buffer: 8 << 20, FlowControl: "none"}},
		{"tls", `{"nats": {"url": "tls://a", "tlsca": "ca.pem", "tlscert": "c.pem", "tlskey": "k.pem"}}`,
			NATSConfig{URL: "tls://a", CA: "ca.pem", Cert: "c.pem", Key: "k.pem", Prefix: "netcluster", Buffer: 8 << 20}},
		{"pending limits", `{"nats": {"url": "a", "pendingmsgs": 1000, "pendingbytes": 1048576}}`,
			NATSConfig{URL: "a", Prefix: "netcluster", Buffer: 8 << 20, PendingMsgs: 1000, PendingBytes: 1 << 20}},
		{"write timeout", `{"nats": {"url": "a", "writetimeout": "2s"}}`,
			NATSConfig{URL: "a", Prefix: "netcluster", Buffer: 8 << 20, WriteTimeout: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.json", []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.MaxAge, tt.want.MaxBytes, tt.want.CatchUp = time.Hour, 64<<20, 5*time.Second // the defaults
			if tt.want.WriteTimeout == 0 {
				tt.want.WriteTimeout = 10 * time.Second
			}
			if tt.want.FlowControl == "" {
				tt.want.FlowControl = "min"
			}
			if tt.want.PendingMsgs == 0 {
				tt.want.PendingMsgs, tt.want.PendingBytes = 65536, 64<<20
			}
			if c.NATS != tt.want {
				t.Errorf("NATS = %+v, want %+v", c.NATS, tt.want)
			}
		})
	}
}

// TestNATSConfigErrors: each bad setting is an error naming its key.
func TestNATSConfigErrors(t *testing.T) {
	tests := []struct{ name, file, key, msg string }{
		{"unknown key", `{"nats": {"urls": "a"}}`, "nats.urls", `did you mean "url"`},
		{"not an object", `{"nats": "nats://a"}`, "nats", "want an object"},
		{"pendingmsgs too low", `{"nats": {"url": "a", "pendingmsgs": 10}}`, "nats.pendingmsgs", "out of range"},
		{"pendingbytes too low", `{"nats": {"url": "a", "pendingbytes": 1024}}`, "nats.pendingbytes", "out of range"},
		{"writetimeout too short", `{"nats": {"url": "a", "writetimeout": "10ms"}}`, "nats.writetimeout", "out of range"},
		{"url not a string", `{"nats": {"url": 4222}}`, "nats.url", "a string or an array of strings"},
		{"url list of numbers", `{"nats": {"url": ["a", 1]}}`, "nats.url", "a string or an array of strings"},
		{"bad scheme", `{"nats": {"url": "http://a:80"}}`, "nats.url", "scheme"},
		{"no host", `{"nats": {"url": "nats://"}}`, "nats.url", "not a NATS URL"},
		{"credentials in the URL", `{"nats": {"url": ["nats://a", "nats://u:hunter2@b"]}}`, "nats.url", "user and password"},
		{"user without password", `{"nats": {"url": "a", "user": "u"}}`, "nats.user", "no password"},
		{"two ways", `{"nats": {"url": "a", "token": "t", "credsfile": "c"}}`, "nats.token", "exclusive"},
		{"cert without key", `{"nats": {"url": "a", "tlscert": "c"}}`, "nats.tlscert", "together"},
		{"bad prefix", `{"nats": {"url": "a", "prefix": "a..b"}}`, "nats.prefix", "not a NATS subject"},
		{"wildcard prefix", `{"nats": {"url": "a", "prefix": "a.>"}}`, "nats.prefix", "not a NATS subject"},
		{"cluster with a dot", `{"cluster": "a.b", "nats": {"url": "a"}}`, "cluster", "token"},
		{"cluster beginning with $", `{"cluster": "$node", "nats": {"url": "a"}}`, "cluster", "token"},
		{"secret placeholder", `{"nats": {"url": "a", "token": "(set)"}}`, "nats.token", "supply the secret"},
		{"buffer out of range", `{"nats": {"url": "a", "buffer": -1}}`, "nats.buffer", "out of range"},
		{"bad flowcontrol", `{"nats": {"url": "a", "flowcontrol": "max"}}`, "nats.flowcontrol", "neither"},
		{"durable with a dot", `{"nats": {"url": "a", "jetstream": true, "durable": "a.b"}}`, "nats.durable", "consumer name"},
		{"maxage too short", `{"nats": {"url": "a", "maxage": "1ms"}}`, "nats.maxage", "out of range"},
		{"control from nats", `{"channels": {"control": {"acceptfromnats": true}}}`, "channels.control.acceptfromnats", "never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.json", []byte(tt.file))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Parse: %v, want a ConfigError", err)
			}
			p := ce.Problems[0]
			if p.Key != tt.key || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("problems %v; want the first on %q saying %q", ce.Problems, tt.key, tt.msg)
			}
		})
	}
}

// TestSecretsNotQuotedInProblems: a secret key's value that does not fit,
// and a URL that may hold credentials, are described, never quoted, in
// the problems that a failed start or reload logs and answers.
func TestSecretsNotQuotedInProblems(t *testing.T) {
	tests := []struct{ name, file, key, msg string }{
		{"key a number", `{"key": 80417266319977}`, "key", "want a string, got a number"},
		{"password a number", `{"nats": {"url": "a", "user": "u", "password": 80417266319977}}`, "nats.password", "got a number"},
		{"token a boolean", `{"nats": {"url": "a", "token": true}}`, "nats.token", "got a boolean"},
		{"bad URL with credentials", `{"nats": {"url": "nats://u:80417266319977@[::1"}}`, "nats.url", "not shown: it may hold credentials"},
		{"bad scheme with credentials", `{"nats": {"url": "http://u:80417266319977@a"}}`, "nats.url", "not shown: it may hold credentials"},
		// Syntax errors name no key; hujson quoted the text.
		{"bad escape in a secret", `{"key": "C:\80417266319977"}`, "", "invalid literal (not quoted here"},
		{"unquoted secret", `{"nats": {"url": "a", "token": x80417266319977}}`, "", "invalid literal (not quoted here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.json", []byte(tt.file))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Parse: %v, want a ConfigError", err)
			}
			if strings.Contains(err.Error(), "80417266319977") {
				t.Errorf("the problem quotes the secret: %v", err)
			}
			for _, p := range ce.Problems {
				if p.Key == tt.key && strings.Contains(p.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("problems %v; want one on %q saying %q", ce.Problems, tt.key, tt.msg)
		})
	}
}

// TestNATSSecretsRedacted: the password and the token are never printed.
func TestNATSSecretsRedacted(t *testing.T) {
	for _, file := range []string{
		`{"nats": {"url": "a", "user": "u", "password": "hunter2"}}`,
		`{"nats": {"url": "a", "token": "hunter2"}}`,
	} {
		c, err := Parse("t.json", []byte(file))
		if err != nil {
			t.Fatal(err)
		}
		shown := fmt.Sprint(configMap(c))
		for _, s := range []string{c.String(), fmt.Sprint(*c), shown} {
			if strings.Contains(s, "hunter2") {
				t.Errorf("printed config shows the secret: %s", s)
			}
		}
		if !strings.Contains(shown, redactedSecret) {
			t.Errorf("showconfig does not say the secret is set: %s", shown)
		}
		if c.NATS.Password+c.NATS.Token != "hunter2" {
			t.Errorf("the secret itself is lost: %+v", c.NATS)
		}
	}
}

// TestNATSMetricsDoc holds the metrics table of docs/operation.md to the
// metric tags of NATSStats.
func TestNATSMetricsDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/operation.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous {
				walk(f.Type)
			} else if name := f.Tag.Get("metric"); name != "" && !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("docs/operation.md does not list the metric %s (NATSStats.%s)", name, f.Name)
			}
		}
	}
	walk(reflect.TypeFor[NATSStats]())
}
