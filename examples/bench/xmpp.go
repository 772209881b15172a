//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The load connections of the bench. Logging in and the component handshake
// go through encoding/xml; once the stream is up, received bytes are only
// scanned for </message> boundaries and the <body/> of each message: the
// testbed's Client parses every stanza twice (encoding/xml, then etree), which
// on a 2-core machine costs about as much CPU as stox itself and would make
// the load generator, not Prosody, the ceiling. testbed.Client is still used
// for the control connection (WaitReady).

const (
	nsStreams = "http://etherx.jabber.org/streams"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
)

// xconn is one XMPP stream used for load: a c2s client or a component.
type xconn struct {
	jid  string // full JID (client) or component domain
	conn net.Conn
	r    *bufio.Reader

	wmu sync.Mutex
}

// send writes raw XML.
func (c *xconn) send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// close ends the stream and the connection.
func (c *xconn) close() {
	_ = c.send([]byte("</stream:stream>"))
	_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
	_ = c.conn.Close()
}

// scan reads the stream until it ends and calls onMessage with every
// <message/> stanza (start tag to end), in order. It runs on one goroutine.
func (c *xconn) scan(onMessage func(stanza []byte)) error {
	buf := make([]byte, 0, 128<<10)
	chunk := make([]byte, 64<<10)
	end := []byte("</message>")
	for {
		n, err := c.r.Read(chunk)
		if n > 0 {
			buf = append(buf, chunk[:n]...)
			off := 0
			for {
				i := bytes.Index(buf[off:], end)
				if i < 0 {
					break
				}
				st := buf[off : off+i+len(end)]
				if j := bytes.LastIndex(st, []byte("<message")); j >= 0 {
					onMessage(st[j:])
				}
				off += i + len(end)
			}
			buf = append(buf[:0], buf[off:]...)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// messageBody returns the text of the first <body> of a message stanza and
// whether the stanza is type='error'.
func messageBody(st []byte) (body []byte, isError bool) {
	if gt := bytes.IndexByte(st, '>'); gt > 0 {
		tag := st[:gt]
		isError = bytes.Contains(tag, []byte(`type='error'`)) || bytes.Contains(tag, []byte(`type="error"`))
	}
	i := bytes.Index(st, []byte("<body"))
	if i < 0 {
		return nil, isError
	}
	gt := bytes.IndexByte(st[i:], '>')
	if gt < 0 {
		return nil, isError
	}
	rest := st[i+gt+1:]
	j := bytes.Index(rest, []byte("</body>"))
	if j < 0 {
		return nil, isError
	}
	return rest[:j], isError
}

// element is any element, for the login exchange.
type element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

func (e *element) attr(local string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// openStream reads up to the server's <stream:stream> start tag.
func openStream(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("reading stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return se, fmt.Errorf("expected <stream:stream>, got <%s>", se.Name.Local)
			}
			return se, nil
		}
	}
}

// nextElement reads the next top-level element of the stream.
func nextElement(d *xml.Decoder) (*element, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var e element
			if err := d.DecodeElement(&e, &t); err != nil {
				return nil, err
			}
			if e.XMLName.Local == "error" && e.XMLName.Space == nsStreams {
				return nil, fmt.Errorf("stream error: %s", e.Inner)
			}
			return &e, nil
		case xml.EndElement:
			return nil, io.EOF
		}
	}
}

// dialClient logs user@domain in with SASL PLAIN, binds resource and sends
// initial presence, waiting for the server to reflect it (the resource is
// then available and gets messages sent to the bare JID).
func dialClient(ctx context.Context, addr, user, domain, pass, resource string) (*xconn, error) {
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := &xconn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	fail := func(err error) (*xconn, error) {
		conn.Close()
		return nil, fmt.Errorf("xmpp login %s@%s: %w", user, domain, err)
	}
	open := []byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStreams +
		"' to='" + domain + "' version='1.0'>")
	d := xml.NewDecoder(c.r)
	if err := c.send(open); err != nil {
		return fail(err)
	}
	if _, err := openStream(d); err != nil {
		return fail(err)
	}
	if _, err := nextElement(d); err != nil { // features
		return fail(err)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if err := c.send([]byte("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + creds + "</auth>")); err != nil {
		return fail(err)
	}
	res, err := nextElement(d)
	if err != nil {
		return fail(err)
	}
	if res.XMLName.Local != "success" {
		return fail(fmt.Errorf("authentication: <%s>%s", res.XMLName.Local, res.Inner))
	}
	d = xml.NewDecoder(c.r) // stream restart (RFC 6120 6.4.6)
	if err := c.send(open); err != nil {
		return fail(err)
	}
	if _, err := openStream(d); err != nil {
		return fail(err)
	}
	if _, err := nextElement(d); err != nil {
		return fail(err)
	}
	if err := c.send([]byte("<iq type='set' id='bind'><bind xmlns='" + nsBind + "'><resource>" + resource + "</resource></bind></iq>")); err != nil {
		return fail(err)
	}
	if res, err = nextElement(d); err != nil {
		return fail(err)
	}
	if res.attr("type") != "result" {
		return fail(fmt.Errorf("bind: %s", res.Inner))
	}
	c.jid = user + "@" + domain + "/" + resource
	if err := c.send([]byte("<presence/>")); err != nil {
		return fail(err)
	}
	for {
		e, err := nextElement(d)
		if err != nil {
			return fail(err)
		}
		if e.XMLName.Local == "presence" && e.attr("from") == c.jid && e.attr("type") == "" {
			break
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// dialComponent opens an XEP-0114 stream for domain and authenticates.
func dialComponent(ctx context.Context, addr, domain, secret string) (*xconn, error) {
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := &xconn{jid: domain, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	fail := func(err error) (*xconn, error) {
		conn.Close()
		return nil, fmt.Errorf("component %s: %w", domain, err)
	}
	d := xml.NewDecoder(c.r)
	if err := c.send([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='" +
		nsStreams + "' to='" + domain + "'>")); err != nil {
		return fail(err)
	}
	se, err := openStream(d)
	if err != nil {
		return fail(err)
	}
	id := ""
	for _, a := range se.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	sum := sha1.Sum([]byte(id + secret))
	if err := c.send([]byte("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")); err != nil {
		return fail(err)
	}
	res, err := nextElement(d)
	if err != nil {
		return fail(err)
	}
	if res.XMLName.Local != "handshake" {
		return fail(fmt.Errorf("handshake refused: <%s>%s", res.XMLName.Local, res.Inner))
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// chatStanza is the message a load client sends (X->S).
func chatStanza(b *[]byte, to, id string, body []byte) []byte {
	out := (*b)[:0]
	out = append(out, "<message type='chat' to='"...)
	out = append(out, to...)
	out = append(out, "' id='"...)
	out = append(out, id...)
	out = append(out, "'><body>"...)
	out = append(out, body...)
	out = append(out, "</body></message>"...)
	*b = out
	return out
}

// componentStanza is the message the echo component sends (S->X ceiling),
// shaped like stox's: from a SIP-user JID, to a bare JID, no type, a
// 16-character id, and the <thread/> that stox must carry the Call-ID in
// (RFC 7572 §5, IM-07; the raw UAC's Call-IDs are like "r1-123@bench").
// Without the thread the ceiling's stanzas were lighter for Prosody.
func componentStanza(b *[]byte, from, to, id, thread string, body []byte) []byte {
	out := (*b)[:0]
	out = append(out, "<message from='"...)
	out = append(out, from...)
	out = append(out, "' to='"...)
	out = append(out, to...)
	out = append(out, "' id='"...)
	out = append(out, id...)
	out = append(out, "'><thread>"...)
	out = append(out, thread...)
	out = append(out, "</thread><body>"...)
	out = append(out, body...)
	out = append(out, "</body></message>"...)
	*b = out
	return out
}
