//go:build unix

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
)

// The names of the integration deployment: Prosody serves example.test, stox
// is the component sip.example.test; every SIP user is reached through the
// outbound proxy, which is a SIPp UAS started by each test.
const (
	xmppDomain = "example.test"
	component  = "sip.example.test"
	secret     = "stox-test-secret"
)

// rig is one Prosody, one stox and an XMPP user alice, connected.
type rig struct {
	t       *testing.T
	ctx     context.Context
	prosody *testbed.Prosody
	stox    *testbed.Stox
	bin     string
	sipPort int // stox's SIP port (UDP and TCP)
	uasPort int // the outbound proxy: a SIPp UAS, when a test starts one
	metrics int // stox's metrics port
	alice   *testbed.Client
	conf    string // stox's configuration, for restarts
}

type rigOption func(*rigConfig)

type rigConfig struct {
	trusted       string
	largeMessages string
	proxyTCP      bool   // the outbound proxy URI says transport=tcp
	extraXMPP     string // lines added under [xmpp]
	proxy         string // outbound proxy URI; default the SIPp UAS at uasPort
	extra         string // sections appended to the configuration
	users         map[string]string
	sipPort       int // stox's SIP port; default a free one
}

func withTrusted(cidr string) rigOption    { return func(c *rigConfig) { c.trusted = cidr } }
func withLargeMessages(p string) rigOption { return func(c *rigConfig) { c.largeMessages = p } }
func withXMPPKeys(lines string) rigOption  { return func(c *rigConfig) { c.extraXMPP = lines } }
func withProxyTCP() rigOption              { return func(c *rigConfig) { c.proxyTCP = true } }
func withProxy(uri string) rigOption       { return func(c *rigConfig) { c.proxy = uri } }
func withConfig(sections string) rigOption { return func(c *rigConfig) { c.extra += sections } }
func withSIPPort(port int) rigOption       { return func(c *rigConfig) { c.sipPort = port } }
func withUser(name, pass string) rigOption {
	return func(c *rigConfig) { c.users[name] = pass }
}
func (r *rig) logs() string {
	return "\n--- stox ---\n" + r.stox.Logs() + "\n--- prosody ---\n" + r.prosody.Logs()
}
func (r *rig) stoxAddr() string           { return fmt.Sprintf("127.0.0.1:%d", r.sipPort) }
func (r *rig) uasArgs(tr string) []string { return []string{"-p", fmt.Sprint(r.uasPort), "-t", tr} }
func timeoutCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newRig starts Prosody and stox and logs alice in (with presence, so she
// gets messages sent to her bare JID).
func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	testbed.Need(t, "prosody", "prosodyctl", "sipp")
	rc := rigConfig{trusted: "127.0.0.1/32", largeMessages: "tcp", users: map[string]string{"alice": "alicepw", "carol": "carolpw"}}
	for _, o := range opts {
		o(&rc)
	}
	ctx := timeoutCtx(t, 4*time.Minute)
	r := &rig{t: t, ctx: ctx}
	p, err := testbed.StartProsody(ctx, testbed.ProsodyConfig{
		Domain:     xmppDomain,
		Components: map[string]string{component: secret},
		Users:      rc.users,
	})
	if err != nil {
		t.Fatalf("prosody: %v", err)
	}
	r.prosody = p
	t.Cleanup(func() { p.Close() })
	bin, err := testbed.BuildStox(ctx, "")
	if err != nil {
		t.Fatalf("build stox: %v", err)
	}
	r.bin = bin
	r.sipPort = rc.sipPort
	if r.sipPort == 0 {
		r.sipPort = testbed.FreePort(t, testbed.TCPUDP)
	}
	r.uasPort = testbed.FreePort(t, testbed.TCPUDP)
	r.metrics = testbed.FreePort(t, testbed.TCP)
	proxyTransport := "udp"
	if rc.proxyTCP {
		proxyTransport = "tcp"
	}
	proxy := fmt.Sprintf("sip:127.0.0.1:%d;transport=%s", r.uasPort, proxyTransport)
	if rc.proxy != "" {
		proxy = rc.proxy
	}
	conf := fmt.Sprintf(`
[xmpp]
component = %q
server = %q
secret = %q
domains = [%q]
ping_interval = "2s"
ping_timeout = "2s"
reconnect_max = "1s"
%s

[sip]
listen = ["udp:127.0.0.1:%d", "tcp:127.0.0.1:%d"]
outbound_proxy = %q
trusted = [%q]
large_messages = %q
transaction_timeout = "3s"

[metrics]
listen = "127.0.0.1:%d"

[log]
level = "debug"
%s
`, component, p.ComponentAddr, secret, xmppDomain, rc.extraXMPP, r.sipPort, r.sipPort, proxy, rc.trusted, rc.largeMessages, r.metrics, rc.extra)
	r.conf = conf
	r.startStox()
	r.alice = r.login("alice", "alicepw", "phone")
	if err := r.stox.WaitReady(ctx, r.alice, component); err != nil {
		t.Fatalf("stox not ready: %v%s", err, r.logs())
	}
	return r
}

// startStox starts stox with r.conf.
func (r *rig) startStox() {
	t := r.t
	t.Helper()
	s, err := testbed.StartStox(r.ctx, r.bin, r.conf)
	if err != nil {
		t.Fatalf("stox: %v", err)
	}
	r.stox = s
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stox did not stop cleanly: %v\n%s", err, s.Logs())
		}
	})
}

func (r *rig) login(user, pass, resource string) *testbed.Client {
	r.t.Helper()
	c, err := testbed.Dial(r.ctx, r.prosody.C2SAddr, user+"@"+xmppDomain, pass, resource, testbed.WithPresence())
	if err != nil {
		r.t.Fatalf("login %s: %v%s", user, err, r.logs())
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// uas starts the SIPp UAS that plays the outbound proxy and every SIP user.
func (r *rig) uas(u testbed.UAS, transport string) *testbed.SIPp {
	r.t.Helper()
	tr := "u1"
	if transport == "tcp" {
		tr = "t1"
	}
	s, err := testbed.RunSIPp(r.ctx, r.t.TempDir(), append(u.Args(), r.uasArgs(tr)...)...)
	if err != nil {
		r.t.Fatalf("sipp uas: %v", err)
	}
	r.t.Cleanup(func() { s.Stop() })
	return s
}

// expect waits for the next stanza c gets that matches.
func (r *rig) expect(c *testbed.Client, what string, match func(*testbed.Stanza) bool) *testbed.Stanza {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	s, err := c.Expect(ctx, match)
	if err != nil {
		var skipped []string
		for _, k := range c.Skipped() {
			skipped = append(skipped, k.Raw)
		}
		r.t.Fatalf("waiting for %s: %v\nskipped: %s%s", what, err, strings.Join(skipped, "\n"), r.logs())
	}
	return s
}

func isMessage(s *testbed.Stanza) bool { return s.Name() == "message" }

// rawMessage is a SIP MESSAGE to stox for testbed.SendRawSIP.
func rawMessage(ruri, from, callID, extra, body string) string {
	return fmt.Sprintf("MESSAGE %s SIP/2.0\r\n"+
		"Via: SIP/2.0/{transport} {local};branch=z9hG4bK-%s\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <%s>;tag=t1\r\n"+
		"To: <%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 MESSAGE\r\n"+
		"%s"+
		"Content-Type: text/plain\r\n"+
		"Content-Length: %d\r\n\r\n%s", ruri, callID, from, ruri, callID, extra, len(body), body)
}

func (r *rig) sendRaw(network, raw string) *testbed.SIPMessage {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	res, err := testbed.SendRawSIP(ctx, network, r.stoxAddr(), []byte(raw))
	if err != nil {
		r.t.Fatalf("raw SIP: %v%s", err, r.logs())
	}
	return res
}

// requests returns the distinct requests a SIPp run received, in order: a UDP
// retransmission (same Via, hence same branch) is counted once.
func requests(t *testing.T, s *testbed.SIPp) []*testbed.SIPMessage {
	t.Helper()
	got, err := s.Received()
	if err != nil {
		t.Fatalf("sipp trace: %v", err)
	}
	seen := map[string]bool{}
	var out []*testbed.SIPMessage
	for _, m := range got {
		if !m.IsRequest() || seen[m.Header("Via")] {
			continue
		}
		seen[m.Header("Via")] = true
		out = append(out, m)
	}
	return out
}

// metric returns the value of one line of stox's /metrics ("" if absent).
func (r *rig) metric(name string) string {
	r.t.Helper()
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", r.metrics))
	if err != nil {
		r.t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
