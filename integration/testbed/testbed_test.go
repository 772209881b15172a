//go:build unix

package testbed

import (
	"context"
	"crypto/sha1"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	domain    = "example.test"
	component = "sip.example.test"
)

// startProsody starts a server with alice and bob for one test.
func startProsody(t *testing.T, ctx context.Context) *Prosody {
	t.Helper()
	Need(t, "prosody", "prosodyctl")
	start := time.Now()
	p, err := StartProsody(ctx, ProsodyConfig{
		Domain:     domain,
		Components: map[string]string{component: "s3cret"},
		MUC:        "conference." + domain,
		Users:      map[string]string{"alice": "alice-pw", "bob": "bob-pw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prosody ready in %v (c2s %s, component %s)", time.Since(start).Round(time.Millisecond), p.C2SAddr, p.ComponentAddr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody logs:\n%s", p.Logs())
		}
		if err := p.Close(); err != nil {
			t.Errorf("closing prosody: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, ctx context.Context, p *Prosody, user, resource string) *Client {
	t.Helper()
	c, err := Dial(ctx, p.C2SAddr, user+"@"+domain, user+"-pw", resource, WithPresence())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestProsodyMessagesInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProsody(t, ctx)
	alice := dial(t, ctx, p, "alice", "phone")
	bob := dial(t, ctx, p, "bob", "desk")
	if alice.JID != "alice@"+domain+"/phone" {
		t.Errorf("alice bound %q", alice.JID)
	}

	const n = 100
	for i := range n {
		msg := fmt.Sprintf("<message to='%s' type='chat' id='m%d'><body>hello %d &amp; &lt;more&gt;</body></message>", bob.JID, i, i)
		if err := alice.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		s, err := bob.Expect(ctx, func(s *Stanza) bool { return s.Name() == "message" })
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got, want := s.Body(), fmt.Sprintf("hello %d & <more>", i); got != want {
			t.Fatalf("message %d: body %q, want %q (%s)", i, got, want, s.Raw)
		}
		if s.Attr("id") != fmt.Sprintf("m%d", i) || s.Attr("from") != alice.JID || s.Attr("type") != "chat" {
			t.Fatalf("message %d: %s", i, s.Raw)
		}
	}
	for _, s := range bob.Skipped() {
		t.Logf("skipped: %s", s.Raw)
	}
}

func TestProsodyIQRestartRegister(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProsody(t, ctx)
	alice := dial(t, ctx, p, "alice", "phone")
	bob := dial(t, ctx, p, "bob", "desk")

	// Stanzas that arrive while IQ waits stay queued, in order.
	for i := range 3 {
		if err := alice.Send(fmt.Sprintf("<message to='%s'><body>%d</body></message>", bob.JID, i)); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := bob.IQ(ctx, "<iq type='get' to='"+domain+"'><query xmlns='"+NSDiscoInfo+"'/></iq>")
	if err != nil {
		t.Fatal(err)
	}
	q := reply.Child(NSDiscoInfo, "query")
	if q == nil || q.FindElement("identity[@category='server']") == nil {
		t.Fatalf("disco#info of %s: %s", domain, reply.Raw)
	}
	for i := range 3 {
		s, err := bob.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name() != "message" || s.Body() != fmt.Sprint(i) {
			t.Fatalf("stanza %d after the IQ: %s", i, s.Raw)
		}
	}

	// An IQ to a component that is not connected gets an error reply.
	reply, err = bob.IQ(ctx, "<iq type='get' to='"+component+"'><query xmlns='"+NSDiscoInfo+"'/></iq>")
	var se *StanzaError
	if !errors.As(err, &se) || reply == nil || reply.Attr("type") != "error" || se.Stanza.ErrorCondition() == "" {
		t.Fatalf("IQ to a disconnected component: %v, %v", reply, err)
	}
	t.Logf("disconnected component: %v", err)

	if err := p.Register("carol", "carol-pw"); err != nil {
		t.Fatal(err)
	}
	oldPID, oldC2S := p.PID(), p.C2SAddr
	start := time.Now()
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart took %v", time.Since(start).Round(time.Millisecond))
	if p.PID() == oldPID || p.C2SAddr != oldC2S {
		t.Errorf("restart: pid %d -> %d, c2s %s -> %s", oldPID, p.PID(), oldC2S, p.C2SAddr)
	}
	if _, err := alice.Next(ctx); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("alice's stream after restart: %v", err)
	}
	// Same accounts: those from the config and the one registered later.
	carol := dial(t, ctx, p, "carol", "")
	alice = dial(t, ctx, p, "alice", "phone")
	if err := carol.Send("<message to='" + alice.JID + "'><body>back</body></message>"); err != nil {
		t.Fatal(err)
	}
	s, err := alice.Expect(ctx, func(s *Stanza) bool { return s.Name() == "message" })
	if err != nil || s.Body() != "back" || s.Attr("from") != carol.JID {
		t.Fatalf("after restart: %v %v", s, err)
	}
	if _, err := Dial(ctx, p.C2SAddr, "alice@"+domain, "wrong", ""); err == nil {
		t.Error("login with a wrong password succeeded")
	}
}

// fakeComponent connects to Prosody as an XEP-0114 component (after delay)
// and answers disco#info, standing in for stox.
func fakeComponent(t *testing.T, ctx context.Context, addr, jid, secret string, delay time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("fake component: %v", err)
		}
	})
	go func() {
		errc <- func() error {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
			defer stop()
			if _, err := fmt.Fprintf(conn, "<stream:stream xmlns='jabber:component:accept' xmlns:stream='%s' to='%s'>", nsStream, jid); err != nil {
				return err
			}
			s := newStreamReader(conn)
			var id string
			for id == "" {
				tok, err := s.dec.RawToken()
				if err != nil {
					return err
				}
				if se, ok := tok.(xml.StartElement); ok {
					for _, a := range se.Attr {
						if a.Name.Local == "id" {
							id = a.Value
						}
					}
				}
			}
			sum := sha1.Sum([]byte(id + secret)) // XEP-0114 handshake
			if _, err := fmt.Fprintf(conn, "<handshake>%x</handshake>", sum); err != nil {
				return err
			}
			for {
				st, err := s.next()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if st.Name() == "iq" && st.Attr("type") == "get" && st.Child(NSDiscoInfo, "query") != nil {
					_, err := fmt.Fprintf(conn, "<iq type='result' id='%s' from='%s' to='%s'><query xmlns='%s'>"+
						"<identity category='gateway' type='sip' name='fake'/></query></iq>",
						xmlEscape(st.Attr("id")), xmlEscape(st.Attr("to")), xmlEscape(st.Attr("from")), NSDiscoInfo)
					if err != nil {
						return err
					}
				}
			}
		}()
	}()
}

// fakeDaemon writes a shell script that stands in for the stox binary.
func fakeDaemon(t *testing.T, onTerm string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake-stox")
	script := "#!/bin/sh\ntrap 'echo got SIGTERM; " + onTerm + "' TERM\necho \"fake stox $*\"\ncat \"$2\"\n" +
		"while :; do sleep 0.05; done\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStoxRunner(t *testing.T) {
	Need(t, "sh")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProsody(t, ctx)
	alice := dial(t, ctx, p, "alice", "")
	const conf = "[xmpp]\ncomponent = \"" + component + "\"\n"

	t.Run("ready", func(t *testing.T) {
		s, err := StartStox(ctx, fakeDaemon(t, "exit 0"), conf)
		if err != nil {
			t.Fatal(err)
		}
		// The component connects late: WaitReady polls through the errors.
		fakeComponent(t, ctx, p.ComponentAddr, component, "s3cret", 500*time.Millisecond)
		start := time.Now()
		if err := s.WaitReady(ctx, alice, component); err != nil {
			t.Fatal(err)
		}
		t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))
		if err := s.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		logs := s.Logs()
		for _, want := range []string{"fake stox -config " + s.Conf, conf, "got SIGTERM"} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %q:\n%s", want, logs)
			}
		}
		if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
			t.Errorf("dir %s left behind: %v", s.Dir, err)
		}
	})
	t.Run("race-exit", func(t *testing.T) {
		s, err := StartStox(ctx, fakeDaemon(t, "exit 66"), conf)
		if err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(s.Logs(), "fake stox") { // the trap is set
			time.Sleep(10 * time.Millisecond)
		}
		if err := s.Stop(); err == nil || !strings.Contains(err.Error(), "data race") {
			t.Errorf("stop of a daemon exiting 66: %v", err)
		}
	})
	t.Run("exits-early", func(t *testing.T) {
		s, err := StartStox(ctx, "/bin/false", conf)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WaitReady(ctx, alice, component); err == nil || !strings.Contains(err.Error(), "exited") {
			t.Errorf("WaitReady on a dead daemon: %v", err)
		}
		s.Kill()
	})
	t.Run("kill", func(t *testing.T) {
		s, err := StartStox(ctx, fakeDaemon(t, "exit 0"), conf)
		if err != nil {
			t.Fatal(err)
		}
		s.Kill()
		if !s.Exited() || strings.Contains(s.Logs(), "got SIGTERM") {
			t.Errorf("after Kill: exited %v, logs:\n%s", s.Exited(), s.Logs())
		}
	})
}

// TestStoxDaemon builds the real daemon and checks the start-up contract of
// DESIGN.md: it connects to Prosody, answers disco#info on its component
// JID, and exits cleanly (and race-free) on SIGTERM.
func TestStoxDaemon(t *testing.T) {
	Need(t, "prosody", "prosodyctl", "go")
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(root, "examples", "gateway", "*.go")); len(files) == 0 {
		t.Skip("examples/gateway has no Go files yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := BuildStox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	p := startProsody(t, ctx)
	sip := FreePort(t, TCPUDP)
	msrp := FreePort(t, TCP)
	conf := fmt.Sprintf(`[xmpp]
component = %q
server    = %q
secret    = "s3cret"
domains   = [%q]

[sip]
listen  = ["udp:127.0.0.1:%d", "tcp:127.0.0.1:%d"]
trusted = ["127.0.0.1/32"]

[msrp]
listen = "tcp:127.0.0.1:%d"

[store]
path = %q
`, component, p.ComponentAddr, domain, sip, sip, msrp, filepath.Join(t.TempDir(), "stox.db"))
	s, err := StartStox(ctx, bin, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stox stop: %v\n%s", err, s.Logs())
		}
	}()
	alice := dial(t, ctx, p, "alice", "")
	start = time.Now()
	if err := s.WaitReady(ctx, alice, component); err != nil {
		t.Fatal(err)
	}
	t.Logf("stox ready in %v", time.Since(start).Round(time.Millisecond))
}
