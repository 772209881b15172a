//go:build unix

package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fakeXMPP is the XMPP server of the presence phase: a minimal XEP-0114
// server on loopback, in the bench process.
//
// Why not Prosody: the presence phase holds 10,000 and 100,000
// subscriptions, and every subscription is a roster entry of an XMPP user.
// Prosody 0.12 with internal storage rewrites a user's whole roster file on
// each change and answers each subscription request through its single Lua
// thread, so a roster of thousands of SIP contacts takes minutes to build
// and Prosody, not stox, would be what is measured. What presence needs of
// the server is small, and this is it: accept the component stream, check
// the handshake (SHA-1 of stream id and secret, XEP-0114 s3), answer every
// get/set IQ with a result (the component's XEP-0199 ping watchdog stays
// happy), approve every subscription request at once (subscribe ->
// subscribed, as an XMPP user who accepts every SIP watcher), swallow the
// rest, and inject the presence stanzas a server would route to the
// component: subscription requests and available presence of XMPP users to
// SIP-user JIDs. Stanzas are read with encoding/xml's RawToken (no
// namespace work) and written by one goroutine from a buffer that never
// blocks the reader: a reply written on the read goroutine could deadlock
// with stox writing to us while we write to it.
type fakeXMPP struct {
	ln        net.Listener
	component string // the component's domain (sip.bench.test)
	server    string // the XMPP domain (bench.test): from of IQ results
	secret    string

	connected chan struct{} // closed at the first successful handshake
	connOnce  sync.Once

	mu      sync.Mutex
	cur     *fakeConn
	conns   []*fakeConn
	closed  bool
	serving sync.WaitGroup

	// onPresence, if set, sees every presence stanza stox sends (on the
	// read goroutine; it must not block).
	onPresence atomic.Pointer[func(typ, from, to string)]

	handshakes  atomic.Int64
	badHandshak atomic.Int64
	pings       atomic.Int64 // IQs answered
	presences   atomic.Int64 // presence stanzas received
	errors      atomic.Int64 // type='error' stanzas received
	subscribes  atomic.Int64 // subscription requests approved
	available   atomic.Int64 // available presence received
	probes      atomic.Int64
	injected    atomic.Int64
}

// fakeConn is one component stream.
type fakeConn struct {
	c    net.Conn
	wmu  sync.Mutex
	wbuf []byte
	wsig chan struct{}
	done chan struct{}
}

func startFakeXMPP(component, server, secret string) (*fakeXMPP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fakeXMPP{ln: ln, component: component, server: server, secret: secret, connected: make(chan struct{})}
	f.serving.Add(1)
	go f.accept()
	return f, nil
}

func (f *fakeXMPP) addr() string { return f.ln.Addr().String() }

func (f *fakeXMPP) accept() {
	defer f.serving.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{c: c, wsig: make(chan struct{}, 1), done: make(chan struct{})}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			_ = c.Close()
			return
		}
		f.conns = append(f.conns, fc)
		f.mu.Unlock()
		f.serving.Add(2)
		go func() {
			defer f.serving.Done()
			fc.writer()
		}()
		go func() {
			defer f.serving.Done()
			defer close(fc.done)
			defer c.Close()
			_ = f.serve(fc)
		}()
	}
}

// close stops the listener and every stream, and waits for their
// goroutines.
func (f *fakeXMPP) close() {
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.mu.Unlock()
	_ = f.ln.Close()
	for _, fc := range conns {
		fc.enqueue([]byte("</stream:stream>"))
		time.Sleep(10 * time.Millisecond)
		_ = fc.c.Close()
	}
	f.serving.Wait()
}

// enqueue appends raw XML to the connection's write buffer; it never
// blocks on the network.
func (fc *fakeConn) enqueue(b []byte) {
	fc.wmu.Lock()
	fc.wbuf = append(fc.wbuf, b...)
	fc.wmu.Unlock()
	select {
	case fc.wsig <- struct{}{}:
	default:
	}
}

func (fc *fakeConn) writer() {
	var out []byte
	for {
		select {
		case <-fc.wsig:
		case <-fc.done:
			return
		}
		fc.wmu.Lock()
		out, fc.wbuf = fc.wbuf, out[:0]
		fc.wmu.Unlock()
		if len(out) == 0 {
			continue
		}
		if _, err := fc.c.Write(out); err != nil {
			return
		}
	}
}

// send writes raw XML to the current stream; false when none is up.
func (f *fakeXMPP) send(b []byte) bool {
	f.mu.Lock()
	fc := f.cur
	f.mu.Unlock()
	if fc == nil {
		return false
	}
	fc.enqueue(b)
	return true
}

// serve runs one component stream: opening, handshake, then stanzas.
func (f *fakeXMPP) serve(fc *fakeConn) error {
	d := xml.NewDecoder(bufio.NewReaderSize(fc.c, 64<<10))
	_ = fc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The component's stream header.
	for {
		tok, err := d.RawToken()
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return fmt.Errorf("fake xmpp: expected <stream:stream>, got <%s>", se.Name.Local)
			}
			break
		}
	}
	id := rand.Text()
	fc.enqueue([]byte("<?xml version='1.0'?><stream:stream xmlns:stream='" + nsStreams +
		"' xmlns='jabber:component:accept' from='" + f.component + "' id='" + id + "'>"))
	// <handshake>hex(SHA-1(id || secret))</handshake>
	var token strings.Builder
	depth := 0
	for done := false; !done; {
		tok, err := d.RawToken()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.CharData:
			if depth == 1 {
				token.Write(t)
			}
		case xml.EndElement:
			depth--
			done = depth == 0
		}
	}
	sum := sha1.Sum([]byte(id + f.secret))
	if strings.TrimSpace(token.String()) != hex.EncodeToString(sum[:]) {
		f.badHandshak.Add(1)
		fc.enqueue([]byte("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"))
		time.Sleep(50 * time.Millisecond)
		return errors.New("fake xmpp: bad handshake")
	}
	fc.enqueue([]byte("<handshake/>"))
	_ = fc.c.SetReadDeadline(time.Time{})
	f.mu.Lock()
	f.cur = fc
	f.mu.Unlock()
	f.handshakes.Add(1)
	f.connOnce.Do(func() { close(f.connected) })

	// Stanzas: depth 1 is the stanza element, deeper is its payload.
	var name, typ, from, to, iqID string
	depth = 0
	var reply []byte
	for {
		tok, err := d.RawToken()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				name, typ, from, to, iqID = t.Name.Local, "", "", "", ""
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "type":
						typ = a.Value
					case "from":
						from = a.Value
					case "to":
						to = a.Value
					case "id":
						iqID = a.Value
					}
				}
			}
		case xml.EndElement:
			if depth == 0 {
				return nil // </stream:stream>
			}
			depth--
			if depth > 0 {
				continue
			}
			if typ == "error" {
				f.errors.Add(1)
			}
			switch name {
			case "iq":
				if typ == "get" || typ == "set" {
					f.pings.Add(1)
					reply = append(reply[:0], "<iq type='result' id='"...)
					reply = appendAttr(reply, iqID)
					reply = append(reply, "' from='"...)
					reply = appendAttr(reply, to)
					reply = append(reply, "' to='"...)
					reply = appendAttr(reply, from)
					reply = append(reply, "'/>"...)
					fc.enqueue(reply)
				}
			case "presence":
				f.presences.Add(1)
				if typ == "subscribe" {
					// The XMPP user approves the SIP watcher (RFC 6121 s3.1.4).
					f.subscribes.Add(1)
					fc.enqueue(presenceXML(reply[:0], "subscribed", bareOf(to), from))
				}
				switch typ {
				case "":
					f.available.Add(1)
				case "probe":
					f.probes.Add(1)
				}
				if h := f.onPresence.Load(); h != nil {
					(*h)(typ, from, to)
				}
			}
		}
	}
}

func bareOf(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// appendAttr appends s escaped for a single-quoted attribute value.
func appendAttr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '\'':
			b = append(b, "&apos;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// presenceXML appends <presence type=typ from to/> (typ "" for available).
func presenceXML(b []byte, typ, from, to string) []byte {
	b = append(b, "<presence"...)
	if typ != "" {
		b = append(b, " type='"...)
		b = append(b, typ...)
		b = append(b, '\'')
	}
	b = append(b, " from='"...)
	b = appendAttr(b, from)
	b = append(b, "' to='"...)
	b = appendAttr(b, to)
	b = append(b, "'/>"...)
	return b
}

// availableXML appends an available presence with a show and a status.
func availableXML(b []byte, from, to, show, status string) []byte {
	b = append(b, "<presence from='"...)
	b = appendAttr(b, from)
	b = append(b, "' to='"...)
	b = appendAttr(b, to)
	b = append(b, "'><show>"...)
	b = append(b, show...)
	b = append(b, "</show><status>"...)
	b = append(b, status...)
	b = append(b, "</status></presence>"...)
	return b
}
