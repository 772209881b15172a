//go:build unix

package testbed

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
)

// ErrStreamClosed is returned by Next, Expect and IQ once the server has
// closed the stream or the connection is gone; it wraps the cause.
var ErrStreamClosed = errors.New("testbed: xmpp stream closed")

const (
	nsStream  = "http://etherx.jabber.org/streams"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
)

// Client is a minimal XMPP c2s client for tests (RFC 6120/6121 over plain
// TCP, SASL PLAIN, resource binding). Unlike a full library it hands stanzas
// over one at a time, in the order the server sent them, so tests can assert
// on order. It is safe for concurrent use.
type Client struct {
	// JID is the full JID the server bound.
	JID string

	conn net.Conn
	wmu  sync.Mutex // serialises writes

	mu      sync.Mutex
	queue   []*Stanza     // received, not yet taken
	skipped []*Stanza     // passed over by Expect
	wake    chan struct{} // closed and replaced whenever queue or err changes
	err     error         // why reading stopped; set once

	readDone chan struct{}
	ids      atomic.Uint64
	closed   atomic.Bool
}

// DialOption changes what Dial does.
type DialOption func(*dialConfig)

type dialConfig struct {
	presence bool
}

// WithPresence makes Dial send initial presence and wait until the server
// has reflected it back (RFC 6121 4.2.2): after Dial returns, the resource is
// available and receives messages sent to the bare JID.
func WithPresence() DialOption { return func(c *dialConfig) { c.presence = true } }

// Dial connects to a c2s listener (host:port), logs in as jid (user@domain)
// with SASL PLAIN and binds resource (server-chosen if ""). ctx bounds the
// whole login.
func Dial(ctx context.Context, addr, jid, password, resource string, opts ...DialOption) (*Client, error) {
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	user, domain, ok := strings.Cut(jid, "@")
	if !ok || user == "" || domain == "" {
		return nil, fmt.Errorf("testbed: dial: %q is not user@domain", jid)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testbed: dial %s: %w", addr, err)
	}
	// The login is synchronous; unblock it when ctx ends.
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c := &Client{conn: conn, wake: make(chan struct{}), readDone: make(chan struct{})}
	s := newStreamReader(conn)
	full, err := c.login(s, user, domain, password, resource)
	if !stopWatch() || err != nil {
		_ = conn.Close()
		if err == nil || ctx.Err() != nil {
			err = fmt.Errorf("testbed: login as %s: %w (%v)", jid, ctx.Err(), err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	c.JID = full
	go c.readLoop(s)
	if cfg.presence {
		if err := c.SendPresence(ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) login(s *streamReader, user, domain, password, resource string) (string, error) {
	open := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream +
		"' to='" + xmlEscape(domain) + "' version='1.0'>"
	// Stream, SASL PLAIN (RFC 6120 6, RFC 4616).
	if err := c.Send(open); err != nil {
		return "", err
	}
	feats, err := s.open()
	if err != nil {
		return "", err
	}
	if !hasMechanism(feats, "PLAIN") {
		return "", fmt.Errorf("testbed: server offers no SASL PLAIN: %s", oneLine(feats.Raw))
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if err := c.Send("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + creds + "</auth>"); err != nil {
		return "", err
	}
	res, err := s.next()
	if err != nil {
		return "", err
	}
	if res.Name() != "success" {
		return "", fmt.Errorf("testbed: authentication as %s@%s failed: %s", user, domain, oneLine(res.Raw))
	}
	// Stream restart, resource binding (RFC 6120 7).
	s.restart()
	if err := c.Send(open); err != nil {
		return "", err
	}
	if feats, err = s.open(); err != nil {
		return "", err
	}
	bind := "<iq type='set' id='bind-1'><bind xmlns='" + nsBind + "'/></iq>"
	if resource != "" {
		bind = "<iq type='set' id='bind-1'><bind xmlns='" + nsBind + "'><resource>" + xmlEscape(resource) + "</resource></bind></iq>"
	}
	if err := c.Send(bind); err != nil {
		return "", err
	}
	res, err = s.next()
	if err != nil {
		return "", err
	}
	if res.Attr("type") != "result" {
		return "", fmt.Errorf("testbed: resource binding failed: %s", oneLine(res.Raw))
	}
	full := ""
	if b := res.Child(nsBind, "bind"); b != nil {
		if j := child(b, nsBind, "jid"); j != nil {
			full = strings.TrimSpace(j.Text())
		}
	}
	if full == "" {
		return "", fmt.Errorf("testbed: no jid in bind result: %s", oneLine(res.Raw))
	}
	// RFC 3921 session, for servers that still require it (RFC 6121 does not).
	if sess := feats.Child(nsSession, "session"); sess != nil && child(sess, "", "optional") == nil {
		if err := c.Send("<iq type='set' id='session-1'><session xmlns='" + nsSession + "'/></iq>"); err != nil {
			return "", err
		}
		if res, err = s.next(); err != nil {
			return "", err
		}
		if res.Attr("type") != "result" {
			return "", fmt.Errorf("testbed: session establishment failed: %s", oneLine(res.Raw))
		}
	}
	return full, nil
}

func hasMechanism(features *Stanza, name string) bool {
	m := features.Child(nsSASL, "mechanisms")
	if m == nil {
		return false
	}
	for _, e := range m.ChildElements() {
		if e.Tag == "mechanism" && strings.TrimSpace(e.Text()) == name {
			return true
		}
	}
	return false
}

// Bare is the bare JID (user@domain) of the client.
func (c *Client) Bare() string {
	bare, _, _ := strings.Cut(c.JID, "/")
	return bare
}

// Send writes raw XML (one or more stanzas) to the stream as is.
func (c *Client) Send(raw string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		return fmt.Errorf("testbed: send: %w", err)
	}
	return nil
}

// SendPresence sends initial (available) presence and waits for the server
// to reflect it to this resource, which it does once the resource is
// available. The reflected presence is consumed; anything else that arrives
// meanwhile stays queued for Next.
func (c *Client) SendPresence(ctx context.Context) error {
	if err := c.Send("<presence/>"); err != nil {
		return err
	}
	_, err := c.take(ctx, func(s *Stanza) bool {
		return s.Name() == "presence" && s.Attr("from") == c.JID && s.Attr("type") == ""
	})
	if err != nil {
		return fmt.Errorf("testbed: waiting for own presence of %s: %w", c.JID, err)
	}
	return nil
}

// Next returns the next stanza in arrival order, waiting for one until ctx
// ends or the stream closes.
func (c *Client) Next(ctx context.Context) (*Stanza, error) {
	return c.take(ctx, func(*Stanza) bool { return true })
}

// Expect returns the next stanza for which match is true. Stanzas before it
// are dropped from the queue and recorded; Skipped returns them.
func (c *Client) Expect(ctx context.Context, match func(*Stanza) bool) (*Stanza, error) {
	for {
		s, err := c.Next(ctx)
		if err != nil {
			return nil, err
		}
		if match(s) {
			return s, nil
		}
		c.mu.Lock()
		c.skipped = append(c.skipped, s)
		c.mu.Unlock()
	}
}

// Skipped returns the stanzas Expect has passed over so far, for failure
// messages.
func (c *Client) Skipped() []*Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Stanza(nil), c.skipped...)
}

// IQ sends an IQ (raw XML with or without an id; any id is replaced by a
// fresh one) and waits for the result or error with that id. Stanzas that
// arrive meanwhile stay queued, in order, for Next. A type="error" reply is
// returned along with a *StanzaError.
func (c *Client) IQ(ctx context.Context, rawIQ string) (*Stanza, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(rawIQ); err != nil || doc.Root() == nil || doc.Root().Tag != "iq" {
		return nil, fmt.Errorf("testbed: IQ: not an <iq/>: %q (%v)", rawIQ, err)
	}
	id := "tb-" + strconv.FormatUint(c.ids.Add(1), 10)
	doc.Root().RemoveAttr("id")
	doc.Root().CreateAttr("id", id)
	out, err := doc.WriteToString()
	if err != nil {
		return nil, fmt.Errorf("testbed: IQ: %w", err)
	}
	if err := c.Send(out); err != nil {
		return nil, err
	}
	reply, err := c.take(ctx, func(s *Stanza) bool {
		t := s.Attr("type")
		return s.Name() == "iq" && s.Attr("id") == id && (t == "result" || t == "error")
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: waiting for the reply to %s: %w", oneLine(out), err)
	}
	if reply.Attr("type") == "error" {
		return reply, &StanzaError{Stanza: reply}
	}
	return reply, nil
}

// take removes and returns the first queued stanza for which match is true,
// leaving the others in place, waiting for one if needed.
func (c *Client) take(ctx context.Context, match func(*Stanza) bool) (*Stanza, error) {
	for {
		c.mu.Lock()
		for i, s := range c.queue {
			if match(s) {
				c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
				c.mu.Unlock()
				return s, nil
			}
		}
		wake, err := c.wake, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the stream (</stream:stream>), waits briefly for the server to
// close its side, and closes the connection. Queued stanzas stay readable.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	_ = c.Send("</stream:stream>")
	select {
	case <-c.readDone:
	case <-time.After(2 * time.Second):
	}
	err := c.conn.Close()
	<-c.readDone
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (c *Client) readLoop(s *streamReader) {
	defer close(c.readDone)
	for {
		st, err := s.next()
		c.mu.Lock()
		if err != nil {
			c.err = fmt.Errorf("%w: %w", ErrStreamClosed, err)
		} else {
			c.queue = append(c.queue, st)
		}
		close(c.wake)
		c.wake = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// streamReader splits an XML stream into top-level elements, keeping the
// exact bytes of each.
type streamReader struct {
	rec *recorder
	dec *xml.Decoder
}

// recorder keeps the bytes the decoder consumed since the last trim. The
// decoder reads through ReadByte only (it uses an io.ByteReader as is), so
// its InputOffset indexes these bytes exactly.
type recorder struct {
	r    *bufio.Reader
	buf  []byte
	base int64 // decoder offset of buf[0]
}

func (r *recorder) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err == nil {
		r.buf = append(r.buf, b)
	}
	return b, err
}

func (r *recorder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

func newStreamReader(conn net.Conn) *streamReader {
	s := &streamReader{rec: &recorder{r: bufio.NewReaderSize(conn, 64<<10)}}
	s.restart()
	return s
}

// restart begins a new stream (after SASL success): a new decoder over the
// same connection.
func (s *streamReader) restart() {
	s.rec.buf, s.rec.base = s.rec.buf[:0], 0
	s.dec = xml.NewDecoder(s.rec)
	s.dec.Strict = true
}

// open reads the server's stream header and the stream features.
func (s *streamReader) open() (*Stanza, error) {
	for {
		tok, err := s.dec.RawToken()
		if err != nil {
			return nil, fmt.Errorf("testbed: reading stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return nil, fmt.Errorf("testbed: expected <stream:stream>, got <%s:%s>", se.Name.Space, se.Name.Local)
			}
			break
		}
	}
	f, err := s.next()
	if err != nil {
		return nil, err
	}
	if f.Name() != "features" {
		return nil, fmt.Errorf("testbed: expected stream features, got %s", oneLine(f.Raw))
	}
	return f, nil
}

// next returns the next top-level element of the stream. A stream error or
// the end of the stream is an error.
func (s *streamReader) next() (*Stanza, error) {
	depth := 0
	var start int64
	for {
		if depth == 0 {
			// Between elements: forget what came before.
			off := s.dec.InputOffset()
			s.rec.buf = s.rec.buf[off-s.rec.base:]
			s.rec.base = off
			start = off
		}
		tok, err := s.dec.RawToken()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 { // </stream:stream>
				return nil, io.EOF
			}
			depth--
			if depth == 0 {
				end := s.dec.InputOffset()
				raw := append([]byte(nil), s.rec.buf[start-s.rec.base:end-s.rec.base]...)
				st, err := parseStanza(raw, NSClient)
				if err != nil {
					return nil, err
				}
				if t.Name.Space == "stream" && t.Name.Local == "error" {
					return nil, fmt.Errorf("stream error: %s", oneLine(st.Raw))
				}
				return st, nil
			}
		}
	}
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

func xmlEscape(s string) string { return xmlEscaper.Replace(s) }
