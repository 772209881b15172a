package msrp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// recorder turns Handler callbacks into channels (callbacks only enqueue).
type recorder struct {
	msgs    chan *Message
	reports chan *Report
	nicks   chan *NicknameRequest
	closed  chan error
}

func newRecorder() *recorder {
	return &recorder{
		msgs:    make(chan *Message, 256),
		reports: make(chan *Report, 64),
		nicks:   make(chan *NicknameRequest, 64),
		closed:  make(chan error, 1),
	}
}

func (r *recorder) handler() Handler {
	return Handler{
		Message:  func(_ *Session, m *Message) { r.msgs <- m },
		Report:   func(_ *Session, rep *Report) { r.reports <- rep },
		Nickname: func(_ *Session, n *NicknameRequest) { r.nicks <- n },
		Closed:   func(_ *Session, err error) { r.closed <- err },
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting")
	}
	panic("unreachable")
}

func noRecv[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %+v", what, v)
	default:
	}
}

type pair struct {
	l        *Listener
	a, b     *Session // a dialled (active), b expected (passive)
	ra, rb   *recorder
	urlA     URL
	urlB     URL
	listenOp []Option
}

// newPair connects two sessions over loopback TCP or TLS.
func newPair(t *testing.T, secure bool, optsA, optsB []Option) *pair {
	t.Helper()
	ctx := testCtx(t)
	var lopts, copts []Option
	if secure {
		cert, pool := selfSigned(t)
		lopts = append(lopts, WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		copts = append(copts, WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	l, err := Listen("tcp", "127.0.0.1:0", lopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &pair{l: l, ra: newRecorder(), rb: newRecorder()}
	p.urlB = l.URL("127.0.0.1")
	p.urlA = URL{Secure: secure, Host: "127.0.0.1", Port: 9, SessionID: NewSessionID(), Transport: "tcp"}
	p.b, err = l.Expect(p.urlB, []URL{p.urlA}, append([]Option{WithHandler(p.rb.handler())}, optsB...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.b.Close() })
	p.a, err = Dial(ctx, p.urlA, []URL{p.urlB}, append(append(copts, WithHandler(p.ra.handler())), optsA...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.a.Close() })
	recv(t, p.b.Bound())
	return p
}

// TestSessionLoopback: two Sessions over TCP and TLS exchange small and
// 1 MiB messages both ways, with reports, concurrently, and NICKNAME.
func TestSessionLoopback(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			checkLeaks(t)
			ctx := testCtx(t)
			p := newPair(t, secure, nil, nil)

			if err := p.a.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("Art thou not Romeo, and a Montague?")}); err != nil {
				t.Fatal(err)
			}
			m := recv(t, p.rb.msgs)
			if string(m.Body) != "Art thou not Romeo, and a Montague?" || m.ContentType != "text/plain" || len(m.FromPath) != 1 || !m.FromPath[0].Equal(p.urlA) {
				t.Errorf("B got %+v", m)
			}
			if err := p.b.Send(ctx, &Message{ContentType: "text/plain", Body: []byte(tv26Body), FailureReport: ReportNo}); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, p.ra.msgs); string(m.Body) != tv26Body || m.FailureReport != ReportNo {
				t.Errorf("A got %+v", m)
			}

			// 1 MiB with a success report (sent by B on completion).
			big := randomBody(1<<20, 11)
			if err := p.a.Send(ctx, &Message{ContentType: "application/octet-stream", Body: big, SuccessReport: true}); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, p.rb.msgs); !bytes.Equal(m.Body, big) || !m.SuccessReport {
				t.Error("1 MiB A->B differs")
			}
			// 1 MiB the other way, Failure-Report no (CHAT-28).
			if err := p.b.Send(ctx, &Message{ContentType: "application/octet-stream", Body: big, FailureReport: ReportNo}); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, p.ra.msgs); !bytes.Equal(m.Body, big) {
				t.Error("1 MiB B->A differs")
			}

			// Concurrent senders: each one's messages arrive in its order.
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 5 {
						body := fmt.Sprintf("g%d-%d", g, i)
						if err := p.a.Send(ctx, &Message{ContentType: "text/plain", Body: []byte(body)}); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			last := map[byte]int{}
			for range 40 {
				m := recv(t, p.rb.msgs)
				var g byte
				var i int
				fmt.Sscanf(string(m.Body), "g%c-%d", &g, &i)
				if prev, ok := last[g]; ok && i != prev+1 {
					t.Errorf("sender %c: %d after %d", g, i, prev)
				}
				last[g] = i
			}

			// NICKNAME (RFC 7701): 200, then 425.
			go func() {
				for range 2 {
					n, ok := <-p.rb.nicks
					if !ok {
						return
					}
					if n.Nickname == "romeo" {
						n.Respond(200, "")
					} else {
						n.Respond(StatusNicknameInUse, "")
					}
				}
			}()
			if err := p.a.SetNickname(ctx, "romeo"); err != nil {
				t.Errorf("SetNickname: %v", err)
			}
			var se *StatusError
			if err := p.a.SetNickname(ctx, "taken"); !errors.As(err, &se) || se.Code != 425 {
				t.Errorf("SetNickname(taken) = %v, want 425", err)
			}

			// The peer closing ends B with an error (CHAT-62).
			p.a.Close()
			if err := recv(t, p.rb.closed); !errors.Is(err, ErrClosed) {
				t.Errorf("B closed with %v", err)
			}
			if err := p.a.Send(ctx, &Message{}); !errors.Is(err, ErrClosed) {
				t.Errorf("Send after Close = %v", err)
			}
			noRecv(t, p.ra.closed, "Closed callback after Close")
		})
	}
}

// TestSessionManualReports: with WithManualSuccessReports, the caller sends
// the success REPORT (CHAT-42) and Send waits for it; a failure REPORT
// fails Send; a report that was not asked for is refused.
func TestSessionManualReports(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	p := newPair(t, false, nil, []Option{WithManualSuccessReports()})
	done := make(chan error, 1)
	go func() {
		done <- p.a.Send(ctx, &Message{ID: "receipt1", ContentType: "text/plain", Body: []byte("hi"), SuccessReport: true, FailureReport: ReportNo})
	}()
	m := recv(t, p.rb.msgs)
	select {
	case err := <-done:
		t.Fatalf("Send returned %v before the report", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := p.b.Report(m, StatusOK, ""); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done); err != nil {
		t.Errorf("Send = %v", err)
	}
	if err := p.b.Report(m, StatusStopSending, ""); !errors.Is(err, ErrNotRequested) {
		t.Errorf("failure report with Failure-Report no: %v", err)
	}

	go func() {
		done <- p.a.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("x"), SuccessReport: true})
	}()
	m = recv(t, p.rb.msgs)
	if err := p.b.Report(m, StatusForbidden, ""); err != nil {
		t.Fatal(err)
	}
	var se *StatusError
	if err := recv(t, done); !errors.As(err, &se) || se.Code != 403 {
		t.Errorf("Send after a failure REPORT = %v", err)
	}

	if err := p.a.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	m = recv(t, p.rb.msgs)
	if err := p.b.Report(m, StatusOK, ""); !errors.Is(err, ErrNotRequested) {
		t.Errorf("success report nobody asked for: %v", err)
	}
}

// serverSession registers the TV-26 session (x2s.example.com) on a
// listener and connects a raw peer to it, bound with the TV-28a SEND.
func serverSession(t *testing.T, opts ...Option) (*Listener, *Session, *recorder, *rawPeer) {
	t.Helper()
	l, err := Listen("tcp", "127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rec := newRecorder()
	s, err := l.Expect(tvX2S, []URL{tvS2X}, WithHandler(rec.handler()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return l, s, rec, dialRaw(t, l.Addr())
}

func sendFrame(tid, id string, body string, extra ...Header) *Frame {
	f := &Frame{TID: tid, Method: MethodSEND, ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X}, MessageID: id, Flag: FlagEnd, Headers: extra}
	n := int64(len(body))
	f.ByteRange = &ByteRange{Start: 1, End: n, Total: n}
	if body != "" {
		f.ContentType, f.Body = "text/plain", []byte(body)
	}
	return f
}

// TestSessionVectors runs TV-26..TV-29 and TV-31 against a passive session,
// with the 481, 501, 400, 415 and 506 cases (CHAT-11, CHAT-23, CHAT-24).
func TestSessionVectors(t *testing.T) {
	checkLeaks(t)
	l, s, rec, p := serverSession(t, WithLimits(Limits{MaxMessageBytes: 10000}))

	// TV-28b: the session-id differs in case: 481, connection not bound.
	p.write(golden(t, "tv28b-case.msrp"))
	r := p.read()
	if r.Code != 481 || r.TID != "a1b2c3d4e5" || !r.ToPath[0].Equal(tvS2X) {
		t.Fatalf("TV-28b: %+v", r)
	}
	// TV-28a: bodiless SEND binds: 200, no message.
	p.write(golden(t, "tv28a-bodiless.msrp"))
	if r := p.read(); r.Code != 200 || r.TID != "a1b2c3d4e5" {
		t.Fatalf("TV-28a: %+v", r)
	}
	recv(t, s.Bound())
	// TV-26: Failure-Report no: no response, one message.
	p.write(golden(t, "tv26-send.msrp"))
	if m := recv(t, rec.msgs); string(m.Body) != tv26Body || m.ID != "87652492" {
		t.Fatalf("TV-26 message %+v", m)
	}
	// TV-27: the 200 is exactly the expected frame.
	p.write(golden(t, "tv27-send.msrp"))
	r = p.read()
	if out, _ := r.Bytes(); !bytes.Equal(out, golden(t, "tv27-200.msrp")) {
		t.Fatalf("TV-27 response\n%q\nwant\n%q", out, golden(t, "tv27-200.msrp"))
	}
	recv(t, rec.msgs)
	// TV-31: REPORT: no response (the next frame answers the next request).
	p.write(golden(t, "tv31-report.msrp"))
	if rep := recv(t, rec.reports); rep.MessageID != "5f3kqz2vw7h9xq4m" || rep.Status.Code != 200 || rep.Err() != nil {
		t.Fatalf("TV-31 report %+v", rep)
	}
	p.writeFrame(sendFrame("after31x", "m31", ""))
	if r := p.read(); r.TID != "after31x" || r.Code != 200 {
		t.Fatalf("after TV-31: %+v (a REPORT must get no response)", r)
	}
	// Failure-Report partial: no 200 (CHAT-23c), but errors.
	f := sendFrame("partial1", "mp1", "partial")
	f.FailureReport = ReportPartial
	p.writeFrame(f)
	recv(t, rec.msgs)
	p.writeFrame(&Frame{TID: "unknown1", Method: "FOOBAR", ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X}, FailureReport: ReportPartial, Flag: FlagEnd})
	if r := p.read(); r.TID != "unknown1" || r.Code != 501 {
		t.Fatalf("partial: %+v (no 200 for partial, 501 for FOOBAR)", r)
	}
	// NICKNAME without a Nickname handler... the recorder has one: a
	// malformed Use-Nickname gets 424 before it.
	p.writeFrame(&Frame{TID: "nick0001", Method: MethodNICKNAME, ToPath: []URL{tvX2S}, FromPath: []URL{tvS2X},
		Headers: []Header{{Name: HeaderUseNickname, Value: "unquoted"}}, Flag: FlagEnd})
	if r := p.read(); r.Code != 424 {
		t.Fatalf("malformed nickname: %+v", r)
	}
	// TV-29a: two chunks, one message of 2100 octets after the second.
	c1 := sendFrame("tv29a001", "tv29a", string(bytes.Repeat([]byte("a"), 2048)))
	c1.ByteRange, c1.Flag = &ByteRange{1, 2048, 2100}, FlagContinued
	c2 := sendFrame("tv29a002", "tv29a", string(bytes.Repeat([]byte("b"), 52)))
	c2.ByteRange = &ByteRange{2049, 2100, 2100}
	p.writeFrame(c1)
	if r := p.read(); r.Code != 200 {
		t.Fatal(r)
	}
	noRecv(t, rec.msgs, "message after the first chunk")
	p.writeFrame(c2)
	if r := p.read(); r.Code != 200 {
		t.Fatal(r)
	}
	if m := recv(t, rec.msgs); len(m.Body) != 2100 || m.Body[2047] != 'a' || m.Body[2048] != 'b' {
		t.Fatalf("TV-29a message of %d octets", len(m.Body))
	}
	// TV-29b: total over the 10000 limit: 413, later chunks dropped.
	c1 = sendFrame("tv29b001", "tv29b", string(bytes.Repeat([]byte("a"), 2048)))
	c1.ByteRange, c1.Flag = &ByteRange{1, 2048, 20000}, FlagContinued
	p.writeFrame(c1)
	if r := p.read(); r.Code != 413 || r.TID != "tv29b001" {
		t.Fatalf("TV-29b: %+v", r)
	}
	c2 = sendFrame("tv29b002", "tv29b", string(bytes.Repeat([]byte("a"), 2048)))
	c2.ByteRange, c2.Flag = &ByteRange{2049, 4096, 20000}, FlagContinued
	p.writeFrame(c2)
	if r := p.read(); r.Code != 413 {
		t.Fatalf("TV-29b later chunk: %+v", r)
	}
	noRecv(t, rec.msgs, "message from a refused SEND")
	// A malformed request (bad Byte-Range) gets 400 and the connection
	// goes on.
	p.write([]byte("MSRP bad00001 SEND\r\nTo-Path: " + tvX2S.String() + "\r\nFrom-Path: " + tvS2X.String() +
		"\r\nMessage-ID: b1\r\nByte-Range: 9-1/5\r\nContent-Type: text/plain\r\n\r\nhello\r\n-------bad00001$\r\n"))
	if r := p.read(); r.Code != 400 || r.TID != "bad00001" {
		t.Fatalf("malformed: %+v", r)
	}
	// A SEND without Message-ID: 400 (CHAT-21b).
	p.writeFrame(sendFrame("nomsgid1", "", ""))
	if r := p.read(); r.Code != 400 {
		t.Fatalf("no Message-ID: %+v", r)
	}
	// A request for another session on this connection: 481.
	other := sendFrame("other001", "o1", "")
	other.ToPath = []URL{u("msrp://x2s.example.com:8763/someoneelse;tcp")}
	p.writeFrame(other)
	if r := p.read(); r.Code != 481 {
		t.Fatalf("other session: %+v", r)
	}
	// A second connection for the bound session: 506 (CHAT-11b).
	p2 := dialRaw(t, l.Addr())
	p2.write(golden(t, "tv28a-bodiless.msrp"))
	if r := p2.read(); r.Code != 506 {
		t.Fatalf("second connection: %+v", r)
	}
	// A message after all this still arrives.
	p.writeFrame(sendFrame("final001", "fin", "still here"))
	if r := p.read(); r.Code != 200 {
		t.Fatal(r)
	}
	if m := recv(t, rec.msgs); string(m.Body) != "still here" {
		t.Fatalf("last message %q", m.Body)
	}
	noRecv(t, rec.closed, "session end")
}

// TestSessionAcceptTypes: 415 for a type outside accept-types (CHAT-24),
// none with Failure-Report no.
func TestSessionAcceptTypes(t *testing.T) {
	checkLeaks(t)
	l, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := newRecorder()
	s, err := l.Expect(tvX2S, []URL{tvS2X}, WithHandler(rec.handler()), WithAcceptTypes("message/cpim", "text/*"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := dialRaw(t, l.Addr())
	f := sendFrame("type0001", "t1", "binary")
	f.ContentType = "application/octet-stream"
	p.writeFrame(f)
	if r := p.read(); r.Code != 415 {
		t.Fatalf("got %+v, want 415", r)
	}
	f = sendFrame("type0002", "t2", "hi")
	f.ContentType = "text/html; charset=utf-8"
	p.writeFrame(f)
	if r := p.read(); r.Code != 200 {
		t.Fatalf("text/html: %+v", r)
	}
	recv(t, rec.msgs)
}

// TestSessionOversizedFrame: a frame over the body limit gets 413 and the
// connection is closed (connection protection).
func TestSessionOversizedFrame(t *testing.T) {
	checkLeaks(t)
	_, s, rec, p := serverSession(t, WithLimits(Limits{MaxBodyBytes: 4096}), WithChunkSize(4096))
	p.write(golden(t, "tv28a-bodiless.msrp"))
	p.read()
	p.writeFrame(sendFrame("huge0001", "h1", string(bytes.Repeat([]byte("x"), 8192))))
	if r := p.read(); r.Code != 413 || r.TID != "huge0001" {
		t.Fatalf("got %+v, want 413", r)
	}
	p.expectClosed(5 * time.Second)
	if err := recv(t, rec.closed); !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrClosed) {
		t.Errorf("session ended with %v", err)
	}
	recv(t, s.Done())
}

// TestSlowLoris: a connection that never binds is closed at the bind
// timeout; a bound one that trickles a frame at the frame timeout; an idle
// one at the idle timeout.
func TestSlowLoris(t *testing.T) {
	checkLeaks(t)
	t.Run("bind", func(t *testing.T) {
		_, _, _, p := serverSession(t, WithBindTimeout(300*time.Millisecond))
		p.write([]byte("MSRP slow"))
		p.expectClosed(5 * time.Second)
	})
	t.Run("frame", func(t *testing.T) {
		l, err := Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		rec := newRecorder()
		s, _ := l.Expect(tvX2S, []URL{tvS2X}, WithHandler(rec.handler()), WithFrameTimeout(300*time.Millisecond))
		defer s.Close()
		p := dialRaw(t, l.Addr())
		p.write(golden(t, "tv28a-bodiless.msrp"))
		p.read()
		raw := golden(t, "tv27-send.msrp")
		p.write(raw[:60])
		time.Sleep(100 * time.Millisecond)
		p.write(raw[60:80])
		p.expectClosed(5 * time.Second)
		if err := recv(t, rec.closed); !errors.Is(err, ErrTimeout) {
			t.Errorf("ended with %v, want ErrTimeout", err)
		}
	})
	t.Run("idle", func(t *testing.T) {
		l, err := Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		rec := newRecorder()
		s, _ := l.Expect(tvX2S, []URL{tvS2X}, WithHandler(rec.handler()), WithIdleTimeout(300*time.Millisecond))
		defer s.Close()
		p := dialRaw(t, l.Addr())
		p.write(golden(t, "tv28a-bodiless.msrp"))
		p.read()
		p.expectClosed(5 * time.Second)
		if err := recv(t, rec.closed); !errors.Is(err, ErrTimeout) {
			t.Errorf("ended with %v, want ErrTimeout", err)
		}
	})
}

// rawServer accepts one connection for a dialled session and answers its
// bodiless SEND (twice: duplicate responses are tolerated).
func rawServer(t *testing.T, opts ...Option) (*Session, *rawPeer, *recorder) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	peerURL := URL{Host: "127.0.0.1", Port: port, SessionID: "peer0001", Transport: "tcp"}
	local := URL{Host: "127.0.0.1", Port: 9, SessionID: "self0001", Transport: "tcp"}
	rec := newRecorder()
	type result struct {
		s   *Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Dial(testCtx(t), local, []URL{peerURL}, append([]Option{WithHandler(rec.handler())}, opts...)...)
		done <- result{s, err}
	}()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p := newRawPeer(t, conn)
	first := p.read()
	// RFC 4975 s5.4 / CHAT-04: a bodiless SEND at once.
	if first.Method != MethodSEND || first.Body != nil || *first.ByteRange != (ByteRange{1, 0, 0}) || !first.ToPath[0].Equal(peerURL) {
		t.Fatalf("first request %+v", first)
	}
	p.respond(first, 200)
	p.respond(first, 200)
	r := recv(t, done)
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.s.Close() })
	return r.s, p, rec
}

// TestSessionActiveSide: responses, duplicates, timeouts, error responses,
// reports and NICKNAME seen from a dialled session.
func TestSessionActiveSide(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	s, p, rec := rawServer(t, WithTransactionTimeout(300*time.Millisecond))
	send := func(m *Message) chan error {
		ch := make(chan error, 1)
		go func() { ch <- s.Send(ctx, m) }()
		return ch
	}

	// Duplicate 200s are ignored.
	done := send(&Message{ContentType: "text/plain", Body: []byte("one")})
	f := p.read()
	p.respond(f, 200)
	p.respond(f, 200)
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
	done = send(&Message{ContentType: "text/plain", Body: []byte("two")})
	p.respond(p.read(), 200)
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
	// No response: ErrTimeout (RFC 4975: treated like a 408).
	done = send(&Message{ContentType: "text/plain", Body: []byte("three")})
	late := p.read()
	if err := recv(t, done); !errors.Is(err, ErrTimeout) {
		t.Fatalf("unanswered: %v", err)
	}
	p.respond(late, 200) // a late response is ignored
	// An error response is a StatusError; a 408 matches ErrTimeout.
	done = send(&Message{ContentType: "text/plain", Body: []byte("four")})
	p.respond(p.read(), 408)
	var se *StatusError
	if err := recv(t, done); !errors.As(err, &se) || se.Code != 408 || !errors.Is(err, ErrTimeout) {
		t.Fatalf("408: %v", err)
	}
	// Failure-Report no: Send returns once written.
	if err := s.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("five"), FailureReport: ReportNo}); err != nil {
		t.Fatal(err)
	}
	if f := p.read(); f.FailureReport != ReportNo || string(f.Body) != "five" {
		t.Fatalf("FR no: %+v", f)
	}
	// Success-Report: Send waits for the REPORT.
	done = send(&Message{ID: "sr1", ContentType: "text/plain", Body: []byte("six"), SuccessReport: true, FailureReport: ReportNo})
	f = p.read()
	if f.SuccessReport != ReportYes {
		t.Fatalf("SR: %+v", f)
	}
	select {
	case err := <-done:
		t.Fatalf("Send returned %v before the REPORT", err)
	case <-time.After(400 * time.Millisecond): // past the transaction timeout: reports have none
	}
	p.writeFrame(&Frame{TID: "rep00001", Method: MethodREPORT, ToPath: f.FromPath, FromPath: f.ToPath, MessageID: "sr1",
		ByteRange: &ByteRange{1, 3, 3}, Status: &Status{0, 200, "OK"}, Flag: FlagEnd})
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
	// A REPORT for nothing pending goes to the handler.
	p.writeFrame(&Frame{TID: "rep00002", Method: MethodREPORT, ToPath: f.FromPath, FromPath: f.ToPath, MessageID: "zzz",
		Status: &Status{0, 413, ""}, Flag: FlagEnd})
	if rep := recv(t, rec.reports); rep.MessageID != "zzz" || rep.Status.Code != 413 {
		t.Fatalf("report %+v", rep)
	}
	// NICKNAME carries one Use-Nickname and no report headers (MUC-40).
	nd := make(chan error, 1)
	go func() { nd <- s.SetNickname(ctx, `Ro"meo`) }()
	f = p.read()
	if nick, err := f.Nickname(); f.Method != MethodNICKNAME || err != nil || nick != `Ro"meo` || f.SuccessReport != "" || f.FailureReport != "" {
		t.Fatalf("NICKNAME %+v %v", f, err)
	}
	p.respond(f, 425)
	if err := recv(t, nd); !errors.As(err, &se) || se.Code != 425 {
		t.Fatalf("nickname: %v", err)
	}
	// Close fails a pending Send with ErrClosed.
	done = send(&Message{ContentType: "text/plain", Body: []byte("seven")})
	p.read()
	s.Close()
	if err := recv(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("pending Send after Close: %v", err)
	}
}

// TestSessionAbortInterruptsChunk: cancelling Send part-way through a
// message ends it with '#' (RFC 4975 s7.1), here inside chunks of 64 KiB
// that are written in 16 KiB slices with range-end "*".
func TestSessionAbortInterruptsChunk(t *testing.T) {
	checkLeaks(t)
	s, p, _ := rawServer(t, WithChunkSize(64<<10), WithTransactionTimeout(time.Minute))
	ctx, cancel := context.WithCancel(testCtx(t))
	body := randomBody(16<<20, 5)
	done := make(chan error, 1)
	go func() {
		done <- s.Send(ctx, &Message{ID: "abort1", ContentType: "application/octet-stream", Body: body})
	}()
	time.Sleep(300 * time.Millisecond) // the writer fills the socket buffers and blocks
	cancel()
	if err := recv(t, done); !errors.Is(err, ErrAborted) {
		t.Fatalf("Send = %v, want ErrAborted", err)
	}
	var got int64
	for {
		f := p.read()
		if f.MessageID != "abort1" {
			t.Fatalf("unexpected frame %+v", f)
		}
		if f.ByteRange.Start != got+1 {
			t.Fatalf("chunk at %d after %d octets", f.ByteRange.Start, got)
		}
		if len(f.Body) > 0 && f.ByteRange.End != Unknown {
			t.Fatalf("interruptible chunk with range-end %d", f.ByteRange.End)
		}
		got += int64(len(f.Body))
		if f.Flag == FlagAborted {
			break
		}
		if f.Flag == FlagEnd {
			t.Fatal("message completed despite the cancel")
		}
	}
	if got >= int64(len(body)) {
		t.Fatalf("all %d octets sent", got)
	}
}

// TestSessionPassiveLifecycle: Send waits for the peer to bind; the queue
// is bounded; Close ends waiting Sends; Expect refuses duplicates; Dial to
// an unknown session gets 481; Listener.Close closes its sessions.
func TestSessionPassiveLifecycle(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	l, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	local := l.URL("127.0.0.1")
	s, err := l.Expect(local, []URL{tvS2X}, WithQueueSize(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Expect(local, []URL{tvS2X}); !errors.Is(err, ErrSessionExists) {
		t.Errorf("duplicate Expect: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("queued")}) }()
	time.Sleep(50 * time.Millisecond)
	if err := s.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("more")}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("second Send = %v, want ErrQueueFull", err)
	}
	s.Close()
	if err := recv(t, done); !errors.Is(err, ErrClosed) {
		t.Errorf("queued Send after Close = %v", err)
	}
	// The session-id is free again after Close.
	s2, err := l.Expect(local, []URL{tvS2X})
	if err != nil {
		t.Fatal(err)
	}
	// Dial to a session the listener does not know: 481.
	addr := l.Addr().(*net.TCPAddr)
	unknown := URL{Host: "127.0.0.1", Port: addr.Port, SessionID: "nosuchsession", Transport: "tcp"}
	var se *StatusError
	if _, err := Dial(ctx, tvS2X, []URL{unknown}); !errors.As(err, &se) || se.Code != 481 {
		t.Errorf("Dial to an unknown session: %v", err)
	}
	// Dial with the wrong From-Path (not the SDP path): 481 as well.
	if _, err := Dial(ctx, u("msrp://127.0.0.1:9/intruder;tcp"), []URL{local}); !errors.As(err, &se) || se.Code != 481 {
		t.Errorf("Dial from an unexpected path: %v", err)
	}
	l.Close()
	recv(t, s2.Done())
	if _, err := l.Expect(l.URL("127.0.0.1"), []URL{tvS2X}); !errors.Is(err, ErrClosed) {
		t.Errorf("Expect after Close: %v", err)
	}
	if _, err := Dial(ctx, tvS2X, []URL{local}); err == nil {
		t.Error("Dial to a closed listener succeeded")
	}
}

func TestOptions(t *testing.T) {
	for name, o := range map[string]Option{
		"chunk":  WithChunkSize(100),
		"tx":     WithTransactionTimeout(0),
		"frame":  WithFrameTimeout(-1),
		"idle":   WithIdleTimeout(-1),
		"queue":  WithQueueSize(0),
		"limits": WithLimits(Limits{MaxHeaderBytes: 10}),
		"logger": WithLogger(nil),
		"random": WithRandom(nil),
		"types":  WithAcceptTypes(""),
		"conns":  WithMaxPendingConns(0),
	} {
		if _, err := Listen("tcp", "127.0.0.1:0", o); !errors.Is(err, ErrOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Listen("tcp", "127.0.0.1:0", WithChunkSize(64<<10), WithLimits(Limits{MaxBodyBytes: 32 << 10})); !errors.Is(err, ErrOption) {
		t.Errorf("chunk size over the body limit: %v", err)
	}
}

// TestDeterministicIDs: WithRandom makes transaction ids and Message-IDs
// reproducible (for the gateway's scenario harness).
func TestDeterministicIDs(t *testing.T) {
	checkLeaks(t)
	s, p, _ := rawServer(t, WithRandom(bytes.NewReader(bytes.Repeat([]byte{0}, 1000))))
	done := make(chan error, 1)
	go func() { done <- s.Send(testCtx(t), &Message{ContentType: "text/plain", Body: []byte("x")}) }()
	f := p.read()
	if f.TID != "aaaaaaaaaaaaaaaa" || f.MessageID != "aaaaaaaaaaaaaaaa" {
		t.Errorf("tid %q Message-ID %q", f.TID, f.MessageID)
	}
	p.respond(f, 200)
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestSessionBothWaysInterleaved: with 64 KiB chunks written in slices
// (range-end "*"), 4 MiB messages both ways at once make each side's
// responses interrupt its chunks with '+' (RFC 4975 s7.1); both messages
// arrive intact. Then Close from inside Handler.Closed does not deadlock.
func TestSessionBothWaysInterleaved(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	closedB := make(chan error, 1)
	msgsB := make(chan *Message, 4)
	big := WithLimits(Limits{MaxMessageBytes: 8 << 20})
	hb := WithHandler(Handler{
		Message: func(_ *Session, m *Message) { msgsB <- m },
		Closed: func(s *Session, err error) {
			s.Close() // must not wait for the goroutine running this
			closedB <- err
		},
	})
	p := newPair(t, false, []Option{WithChunkSize(64 << 10), big}, []Option{WithChunkSize(64 << 10), big, hb})
	bodyA, bodyB := randomBody(4<<20, 21), randomBody(4<<20, 22)
	errs := make(chan error, 2)
	go func() { errs <- p.a.Send(ctx, &Message{ContentType: "application/octet-stream", Body: bodyA}) }()
	go func() { errs <- p.b.Send(ctx, &Message{ContentType: "application/octet-stream", Body: bodyB}) }()
	for range 2 {
		if err := recv(t, errs); err != nil {
			t.Fatal(err)
		}
	}
	if m := recv(t, msgsB); !bytes.Equal(m.Body, bodyA) {
		t.Error("A->B differs")
	}
	if m := recv(t, p.ra.msgs); !bytes.Equal(m.Body, bodyB) {
		t.Error("B->A differs")
	}
	p.a.Close()
	if err := recv(t, closedB); !errors.Is(err, ErrClosed) {
		t.Errorf("B ended with %v", err)
	}
}

// pipeSession binds a session to one end of a net.Pipe, whose writes
// block until the other end reads: the writer can be held inside a chunk.
func pipeSession(t *testing.T, opts ...Option) (*Session, *rawPeer) {
	t.Helper()
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		t.Fatal(err)
	}
	s, err := newSession(u("msrp://127.0.0.1:9/pipeself;tcp"), []URL{u("msrp://127.0.0.1:9/pipepeer;tcp")}, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	if err := s.bind(c1, NewParser(cfg.limits), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p := newRawPeer(t, c2)
	p.r = NewReader(c2, Limits{MaxBodyBytes: 1 << 20})
	return s, p
}

// TestSessionInterruptMidChunk: a 512 KiB chunk, written in 16 KiB slices
// with range-end "*", is interrupted part-way (RFC 4975 s7.1, CHAT-26):
// with '+' when a response is owed (the rest follows in the next chunk),
// with '#' when Send's context ends.
func TestSessionInterruptMidChunk(t *testing.T) {
	checkLeaks(t)
	opts := []Option{WithChunkSize(512 << 10), WithLimits(Limits{MaxBodyBytes: 1 << 20}), WithTransactionTimeout(time.Minute)}
	t.Run("yield", func(t *testing.T) {
		s, p := pipeSession(t, opts...)
		body := randomBody(512<<10, 31)
		done := make(chan error, 1)
		go func() {
			done <- s.Send(testCtx(t), &Message{ID: "yield1", ContentType: "application/octet-stream", Body: body, FailureReport: ReportNo})
		}()
		time.Sleep(100 * time.Millisecond) // the writer blocks in the pipe, inside the chunk
		req := &Frame{TID: "req00001", Method: MethodSEND, ToPath: []URL{s.local}, FromPath: s.remote, MessageID: "r1",
			ByteRange: &ByteRange{1, 0, 0}, Flag: FlagEnd}
		p.writeFrame(req) // owes a response: the chunk yields
		first := p.read()
		if first.Flag != FlagContinued || first.ByteRange.End != Unknown || len(first.Body) == 0 || len(first.Body) >= len(body) {
			t.Fatalf("first chunk: flag %c, range %s, %d octets", first.Flag, first.ByteRange, len(first.Body))
		}
		if r := p.read(); r.TID != "req00001" || r.Code != 200 {
			t.Fatalf("expected the response between the chunks, got %+v", r)
		}
		got := append([]byte(nil), first.Body...)
		for {
			f := p.read()
			if f.ByteRange.Start != int64(len(got))+1 {
				t.Fatalf("chunk at %d after %d octets", f.ByteRange.Start, len(got))
			}
			got = append(got, f.Body...)
			if f.Flag == FlagEnd {
				break
			}
		}
		if !bytes.Equal(got, body) {
			t.Fatal("message differs")
		}
		if err := recv(t, done); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("abort", func(t *testing.T) {
		s, p := pipeSession(t, opts...)
		ctx, cancel := context.WithCancel(testCtx(t))
		done := make(chan error, 1)
		go func() {
			done <- s.Send(ctx, &Message{ID: "abort2", ContentType: "application/octet-stream", Body: randomBody(512<<10, 32)})
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := recv(t, done); !errors.Is(err, ErrAborted) {
			t.Fatalf("Send = %v", err)
		}
		f := p.read()
		if f.Flag != FlagAborted || len(f.Body) == 0 || len(f.Body) >= 512<<10 {
			t.Fatalf("chunk: flag %c, %d octets", f.Flag, len(f.Body))
		}
	})
}

// TestSessionEnqueue: messages queued with Enqueue leave in order, and one
// waiting for its success REPORT does not hold up the next (CHAT-40).
func TestSessionEnqueue(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	p := newPair(t, false, nil, []Option{WithManualSuccessReports()})
	first := &Message{ContentType: "text/plain", Body: []byte("one"), SuccessReport: true}
	waitFirst, err := p.a.Enqueue(first)
	if err != nil {
		t.Fatal(err)
	}
	second := &Message{ContentType: "text/plain", Body: []byte("two")}
	waitSecond, err := p.a.Enqueue(second)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitSecond(ctx); err != nil {
		t.Fatalf("second: %v", err)
	}
	m1, m2 := recv(t, p.rb.msgs), recv(t, p.rb.msgs)
	if string(m1.Body) != "one" || string(m2.Body) != "two" {
		t.Fatalf("order: %q, %q", m1.Body, m2.Body)
	}
	if err := p.b.Report(m1, StatusOK, ""); err != nil {
		t.Fatal(err)
	}
	if err := waitFirst(ctx); err != nil {
		t.Errorf("first, after its report: %v", err)
	}
}
