//go:build unix

package testbed

import (
	"context"
	"fmt"
	"html"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// publishCodes are the final statuses uac_publish.xml can expect.
var publishCodes = []int{200, 400, 403, 404, 412, 415, 423, 480, 489, 500, 501, 503}

// Publish describes one PUBLISH (RFC 3903, Event: presence) sent by SIPp
// (uac_publish.xml) with a PIDF document (RFC 3863):
//
//	<?xml version="1.0" encoding="UTF-8"?>
//	<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="ENTITY">
//	<tuple id="TUPLE">
//	<status><basic>BASIC</basic></status>
//	<note>NOTE</note>
//	</tuple>
//	</presence>
//
// Without ETag it creates a publication; with ETag (the SIP-ETag of an
// earlier 2xx, see PublishETag) it modifies that publication (a new body),
// or with Refresh refreshes it (no body), or with Remove removes it
// (Expires: 0, no body). A publication of the same presentity made without
// ETag is another publication: a presence server such as Kamailio then
// merges the tuples of both.
type Publish struct {
	RequestURI string // required: the presentity, e.g. "sip:bob@example.net"
	From       string // name-addr or URI without tag; default the Request-URI
	To         string // default the Request-URI
	Entity     string // the PIDF entity; default the Request-URI
	TupleID    string // default "sipp"
	Basic      string // "open" (default) or "closed"
	Note       string // the tuple's note, escaped here; no line breaks
	Expires    int    // seconds; default 3600
	ETag       string // SIP-If-Match: act on that publication
	Refresh    bool   // with ETag: refresh only, no body
	Remove     bool   // with ETag: remove (Expires: 0, no body)
	Expect     int    // the final status it must get; default 200
}

// Args returns the sipp arguments for p, including a reserved local port
// (-p) and -m 1. The caller adds the transport (-t t1 for TCP) and the
// destination host:port.
func (p Publish) Args() ([]string, error) {
	if p.RequestURI == "" {
		return nil, fmt.Errorf("testbed: Publish.RequestURI is required")
	}
	mode := "initial"
	switch {
	case p.ETag == "" && (p.Refresh || p.Remove):
		return nil, fmt.Errorf("testbed: Publish.Refresh and Publish.Remove need the ETag of the publication")
	case p.Refresh && p.Remove:
		return nil, fmt.Errorf("testbed: Publish: Refresh or Remove, not both")
	case p.Remove:
		mode = "remove"
	case p.Refresh:
		mode = "refresh"
	case p.ETag != "":
		mode = "modify"
	}
	from, to, entity := p.From, p.To, p.Entity
	if from == "" {
		from = p.RequestURI
	}
	if to == "" {
		to = p.RequestURI
	}
	if entity == "" {
		entity = p.RequestURI
	}
	tuple, basic := p.TupleID, p.Basic
	if tuple == "" {
		tuple = "sipp"
	}
	if basic == "" {
		basic = "open"
	}
	if basic != "open" && basic != "closed" {
		return nil, fmt.Errorf("testbed: Publish.Basic %q: want open or closed", basic)
	}
	expires := p.Expires
	if expires <= 0 {
		expires = 3600
	}
	expect := p.Expect
	if expect == 0 {
		expect = 200
	}
	if !slices.Contains(publishCodes, expect) {
		return nil, fmt.Errorf("testbed: uac_publish.xml cannot expect status %d (only %v)", expect, publishCodes)
	}
	for name, v := range map[string]string{"RequestURI": p.RequestURI, "From": from, "To": to, "Entity": entity,
		"TupleID": tuple, "Note": p.Note, "ETag": p.ETag} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("testbed: Publish.%s cannot hold a line break", name)
		}
	}
	port, err := ReservePort(TCPUDP)
	if err != nil {
		return nil, err
	}
	etag := p.ETag
	if etag == "" {
		etag = "-"
	}
	return []string{"-sf", Scenario("uac_publish.xml"),
		"-key", "ruri", p.RequestURI,
		"-key", "from", nameAddr(from),
		"-key", "to", nameAddr(to),
		"-key", "expires", strconv.Itoa(expires),
		"-key", "mode", mode,
		"-key", "etag", etag,
		"-key", "entity", html.EscapeString(entity),
		"-key", "tuple", html.EscapeString(tuple),
		"-key", "basic", basic,
		"-key", "note", html.EscapeString(p.Note),
		"-key", "expect", strconv.Itoa(expect),
		"-m", "1",
		"-p", strconv.Itoa(port),
		"-default_behaviors", "all,-bye",
	}, nil
}

// PublishETag returns the SIP-ETag of the last 2xx to a PUBLISH in msgs
// (what SIPp received, e.g. from SIPp.Received), "" if there is none.
func PublishETag(msgs []*SIPMessage) string {
	etag := ""
	for _, m := range msgs {
		if !m.Sent && m.Method() == "PUBLISH" && m.StatusCode()/100 == 2 {
			if v := m.Header("SIP-ETag"); v != "" {
				etag = v
			}
		}
	}
	return etag
}

// Subscribe describes a SIP watcher run by SIPp (uac_subscribe.xml, see
// StartWatcher): one SUBSCRIBE and its 2xx; every NOTIFY answered 200 by
// SIPp itself (-aa), whenever it comes; then, when told (Watcher.End),
// optionally an unsubscribe (in-dialog SUBSCRIBE with Expires: 0 along the
// route set of the 2xx) and a wait for the final NOTIFY. A failure
// response to either SUBSCRIBE, or none within Timeout, fails the run.
type Subscribe struct {
	RequestURI  string        // required: the presentity, e.g. "sip:bob@example.net"
	From        string        // the watcher, without tag; default <sip:watcher@sipp.invalid>
	To          string        // default the Request-URI
	Event       string        // default "presence"
	Accept      string        // default "application/pidf+xml"
	Expires     int           // seconds; default 600
	Unsubscribe bool          // unsubscribe when told to end
	FinalWait   time.Duration // after the unsubscribe's 2xx, how long to wait for the final NOTIFY (-d); default 500 ms
	Timeout     time.Duration // how long each response may take (-recv_timeout); default 10 s
}

// Args returns the sipp arguments for s, including -aa, -m 1 and a
// reserved local port (-p). The caller adds the transport and the
// destination host:port; StartWatcher does all that.
func (s Subscribe) Args() ([]string, error) {
	if s.RequestURI == "" {
		return nil, fmt.Errorf("testbed: Subscribe.RequestURI is required")
	}
	from, to, event, accept := s.From, s.To, s.Event, s.Accept
	if from == "" {
		from = "<sip:watcher@sipp.invalid>"
	}
	if to == "" {
		to = s.RequestURI
	}
	if event == "" {
		event = "presence"
	}
	if accept == "" {
		accept = "application/pidf+xml"
	}
	expires := s.Expires
	if expires <= 0 {
		expires = 600
	}
	final := s.FinalWait
	if final <= 0 {
		final = 500 * time.Millisecond
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	unsub := "no"
	if s.Unsubscribe {
		unsub = "yes"
	}
	for name, v := range map[string]string{"RequestURI": s.RequestURI, "From": from, "To": to, "Event": event, "Accept": accept} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("testbed: Subscribe.%s cannot hold a line break", name)
		}
	}
	port, err := ReservePort(TCPUDP)
	if err != nil {
		return nil, err
	}
	return []string{"-sf", Scenario("uac_subscribe.xml"),
		"-key", "ruri", s.RequestURI,
		"-key", "from", nameAddr(from),
		"-key", "to", nameAddr(to),
		"-key", "event", event,
		"-key", "accept", accept,
		"-key", "expires", strconv.Itoa(expires),
		"-key", "unsubscribe", unsub,
		"-aa",
		"-d", strconv.FormatInt(final.Milliseconds(), 10),
		"-recv_timeout", strconv.FormatInt(timeout.Milliseconds(), 10),
		"-m", "1",
		"-p", strconv.Itoa(port),
		"-default_behaviors", "all,-bye",
	}, nil
}

// Watcher is a SIP watcher run by SIPp (uac_subscribe.xml) over UDP.
type Watcher struct {
	*SIPp
	port int // SIPp's own port, where End sends the go-ahead
}

// StartWatcher runs s with SIPp in dir (tests pass t.TempDir()) against
// dest (host:port, e.g. Kamailio.SIPAddr) over UDP, and returns at once.
// Follow it with WaitNotifies and End; SIPp runs until End (or until ctx
// ends, which kills it).
func StartWatcher(ctx context.Context, dir string, s Subscribe, dest string) (*Watcher, error) {
	args, err := s.Args()
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(flagValue(args, "-p"))
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	sp, err := RunSIPp(ctx, dir, append(args, "-t", "u1", dest)...)
	if err != nil {
		return nil, err
	}
	return &Watcher{SIPp: sp, port: port}, nil
}

// Response waits for the final response to the SUBSCRIBE and returns it
// (a 2xx, or the failure that ended the run).
func (w *Watcher) Response(ctx context.Context) (*SIPMessage, error) {
	for {
		msgs, err := w.Received()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Method() == "SUBSCRIBE" && m.StatusCode() >= 200 {
				return m, nil
			}
		}
		if err := w.poll(ctx, "the response to the SUBSCRIBE"); err != nil {
			return nil, err
		}
	}
}

// WaitNotifies waits until the watcher has received at least n NOTIFYs
// and returns all of them so far (see Notifies).
func (w *Watcher) WaitNotifies(ctx context.Context, n int) ([]*SIPMessage, error) {
	for {
		msgs, err := w.Received()
		if err != nil {
			return nil, err
		}
		if got := Notifies(msgs); len(got) >= n {
			return got, nil
		}
		if err := w.poll(ctx, fmt.Sprintf("%d NOTIFYs", n)); err != nil {
			return nil, err
		}
	}
}

// poll sleeps a little, failing if ctx ends or SIPp has exited.
func (w *Watcher) poll(ctx context.Context, what string) error {
	if w.p.exited() {
		if err := w.Wait(); err != nil {
			return fmt.Errorf("testbed: watcher ended before %s: %w", what, err)
		}
		return fmt.Errorf("testbed: watcher ended before %s", what)
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("testbed: waiting for %s: %w\n%s", what, ctx.Err(), w.ErrLog())
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}

// End waits for the 2xx to the SUBSCRIBE, sends SIPp the go-ahead (a
// MESSAGE with the SUBSCRIBE's Call-ID to its own port, over UDP, which
// SIPp does not answer), and waits for
// SIPp to finish: unsubscribe and wait for the final NOTIFY if
// Subscribe.Unsubscribe, else just end. It returns what Wait returns.
func (w *Watcher) End(ctx context.Context) error {
	resp, err := w.Response(ctx)
	if err != nil {
		return err
	}
	if resp.StatusCode()/100 != 2 {
		return w.Wait()
	}
	id := randomHex(8)
	raw := "MESSAGE sip:sipp@127.0.0.1:" + strconv.Itoa(w.port) + " SIP/2.0\r\n" +
		"Via: SIP/2.0/{transport} {local};branch=z9hG4bK" + id + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:testbed@testbed.invalid>;tag=" + id + "\r\n" +
		"To: <sip:sipp@127.0.0.1>\r\n" +
		"Call-ID: " + resp.Header("Call-ID") + "\r\n" +
		"CSeq: 1 MESSAGE\r\n" +
		"Content-Length: 0\r\n\r\n"
	// SIPp does not answer it (it would send the answer to dest).
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(w.port)))
	if err != nil {
		return fmt.Errorf("testbed: watcher go-ahead: %w", err)
	}
	raw = strings.ReplaceAll(raw, "{transport}", "UDP")
	raw = strings.ReplaceAll(raw, "{local}", conn.LocalAddr().String())
	_, err = conn.Write([]byte(raw))
	_ = conn.Close()
	if err != nil {
		return fmt.Errorf("testbed: watcher go-ahead: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		w.p.kill()
		<-done
		return fmt.Errorf("testbed: watcher did not finish: %w\n%s", ctx.Err(), w.ErrLog())
	}
}

// Notifies returns the NOTIFY requests in msgs that SIPp received, in
// order, without UDP retransmissions (same Call-ID and CSeq).
func Notifies(msgs []*SIPMessage) []*SIPMessage {
	var out []*SIPMessage
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.Sent || !m.IsRequest() || m.Method() != "NOTIFY" {
			continue
		}
		key := m.Header("Call-ID") + "\x00" + m.Header("CSeq")
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, m)
	}
	return out
}
