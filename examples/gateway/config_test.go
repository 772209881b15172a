package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodConfig = `
[xmpp]
component = "sip.example.com"
server    = "127.0.0.1:5347"
secret    = "s"
domains   = ["example.com"]
[sip]
listen  = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
trusted = ["127.0.0.1/32", "::1"]
`

func TestExampleConfigIsValid(t *testing.T) {
	c, err := loadConfig("../config/stox.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.LargeMessages != "tcp" || c.Chat.Mode != "message" || !c.foreignDomains() {
		t.Fatalf("defaults not applied: %+v", c.SIP)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(goodConfig)
	if err != nil {
		t.Fatal(err)
	}
	// DESIGN.md defaults.
	if c.SIP.Domain != "sip.example.com" || c.SIP.LargeMessages != "tcp" || c.Chat.Mode != "message" || !c.foreignDomains() {
		t.Fatalf("defaults: %+v %+v", c.SIP, c.Chat)
	}
	ps, _ := c.trustedPrefixes()
	if len(ps) != 2 || ps[1].String() != "::1/128" {
		t.Fatalf("trusted = %v", ps)
	}
}

// Every bad value names its key.
func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct{ edit, key string }{
		{`component = "sip.example.com"`, "xmpp.component"},
		{`server    = "127.0.0.1:5347"`, "xmpp.server"},
		{`secret    = "s"`, "xmpp.secret"},
		{`domains   = ["example.com"]`, "xmpp.domains"},
	}
	for _, c := range cases {
		t.Run("missing "+c.key, func(t *testing.T) {
			_, err := parseConfig(strings.Replace(goodConfig, c.edit, "", 1))
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("err = %v, want it to name %s", err, c.key)
			}
		})
	}
	bad := []struct{ extra, key string }{
		{"[chat]\nmode = \"carrier-pigeon\"", "chat.mode"},
		{"[chat]\nmode = \"msrp\"", "chat.mode"},
		{"[log]\nlevel = \"loud\"", "log.level"},
		{"[log]\nformat = \"xml\"", "log.format"},
		{"[msrp]\nlisten = \"udp:127.0.0.1:2855\"", "msrp.listen"},
		{"[msrp]\nlisten = \"tls:127.0.0.1:2855\"", "msrp.tls_cert"},
		{"[msrp]\nlisten = \"tcp:0.0.0.0:2855\"", "msrp.host"},
		{"[msrp]\nlisten = \"tcp:127.0.0.1:2855\"\nhost = \"a b\"", "msrp.host"},
		{"[chat]\nqueue = -1", "chat"},
		{"[presence]\nsubscribe_expires = 10", "presence.subscribe_expires"},
		{"[presence]\nmin_expires = 100\nmax_expires = 50", "presence.max_expires"},
		{"[admin]\njids = [\"not a jid\"]", "admin.jids[0]"},
		{"[store]\npaht = \"x\"", "store.paht"},
	}
	for _, c := range bad {
		t.Run(c.key, func(t *testing.T) {
			_, err := parseConfig(goodConfig + "\n" + c.extra + "\n")
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("err = %v, want it to name %s", err, c.key)
			}
		})
	}
	replace := []struct{ from, to, key string }{
		{`"udp:127.0.0.1:5060", `, `"sctp:127.0.0.1:5060", `, "sip.listen[0]"},
		{`"127.0.0.1/32", `, `"localhost", `, "sip.trusted[0]"},
		{`component = "sip.example.com"`, `component = "SIP.example.com"`, "xmpp.component"},
		{`domains   = ["example.com"]`, `domains   = ["sip.example.com"]`, "xmpp.domains[0]"},
		{`server    = "127.0.0.1:5347"`, `server    = "127.0.0.1"`, "xmpp.server"},
		{`listen  = [`, "large_messages = \"split\"\nlisten  = [", "sip.large_messages"},
		{`listen  = [`, "outbound_proxy = \"127.0.0.1:5070\"\nlisten  = [", "sip.outbound_proxy"},
		{`listen  = [`, "listen_typo = 1\nlisten  = [", "sip.listen_typo"},
		{`"udp:127.0.0.1:5060", `, `"tls:127.0.0.1:5061", `, "sip.tls_cert"},
		{`secret    = "s"`, "secret = \"s\"\nmax_stanza_size = 5000", "xmpp.max_stanza_size"},
		{`secret    = "s"`, "secret = \"s\"\nmax_segment = 100", "xmpp.max_segment"},
		{`secret    = "s"`, "secret = \"s\"\nmax_segment = 40000", "xmpp.max_segment"},
		{`secret    = "s"`, "secret = \"s\"\nmax_segment = -2", "xmpp.max_segment"},
		{`secret    = "s"`, "secret = \"s\"\nping_interval = \"soon\"", "ping_interval"},
	}
	for _, c := range replace {
		t.Run(c.key, func(t *testing.T) {
			_, err := parseConfig(strings.Replace(goodConfig, c.from, c.to, 1))
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("err = %v, want it to name %s", err, c.key)
			}
		})
	}
}

func TestCheckConfigFlag(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte(goodConfig), 0o600)
	os.WriteFile(bad, []byte(goodConfig+"\n[chat]\nmode = \"x\"\n"), 0o600)
	var out bytes.Buffer
	if code := run([]string{"-check-config", good}, &out); code != 0 {
		t.Fatalf("good config: exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"-check-config", bad}, &out); code == 0 || !strings.Contains(out.String(), "chat.mode") {
		t.Fatalf("bad config: exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"-version"}, &out); code != 0 || !strings.HasPrefix(out.String(), "stox ") {
		t.Fatalf("-version: %d %q", code, out.String())
	}
	if code := run(nil, &out); code != 2 {
		t.Fatalf("no flags: exit %d", code)
	}
}
