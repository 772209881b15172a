//go:build unix

package main

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The raw UAS answers what sipgo would, and delivers a retransmitted MESSAGE
// once: a duplicate the tracker counts is one that stox sent.
func TestRawUASRetransmission(t *testing.T) {
	var mu sync.Mutex
	var got []string
	u, err := startRawUAS(0, 200, func(b []byte) { mu.Lock(); got = append(got, string(b)); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := u.conn.LocalAddr().(*net.UDPAddr)
	exchange := func(req string) *sip.Response {
		t.Helper()
		if _, err := c.WriteToUDP([]byte(req), to); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		m, err := sip.ParseMessage(buf[:n])
		if err != nil {
			t.Fatalf("%v\n%s", err, buf[:n])
		}
		res, ok := m.(*sip.Response)
		if !ok {
			t.Fatalf("not a response:\n%s", buf[:n])
		}
		return res
	}
	msg := "MESSAGE sip:u1@sip.bench.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5099;rport;branch=z9hG4bK.abc\r\n" +
		"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK.def\r\n" +
		"Max-Forwards: 70\r\n" +
		"f: \"X\" <sip:x@bench.test>;tag=abc\r\n" +
		"To: <sip:u1@sip.bench.test>\r\n" +
		"i: cid-1\r\n" +
		"CSeq: 7 MESSAGE\r\n" +
		"Content-Type: text/plain\r\n" +
		"l: 5\r\n\r\nhello"
	var tags []string
	for range 2 { // the request and a retransmission
		res := exchange(msg)
		if res.StatusCode != 200 || res.CallID().Value() != "cid-1" || res.CSeq().SeqNo != 7 ||
			res.CSeq().MethodName != sip.MESSAGE || len(res.GetHeaders("Via")) != 2 {
			t.Fatalf("response:\n%s", res)
		}
		v := res.Via()
		if b, _ := v.Params.Get("branch"); b != "z9hG4bK.abc" {
			t.Fatalf("top Via branch %q", b)
		}
		if rp, _ := v.Params.Get("rport"); rp != strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port) {
			t.Fatalf("rport %q", rp)
		}
		if tag, _ := res.From().Params.Get("tag"); tag != "abc" {
			t.Fatalf("From tag %q", tag)
		}
		tag, _ := res.To().Params.Get("tag")
		tags = append(tags, tag)
	}
	if tags[0] == "" || tags[0] != tags[1] {
		t.Fatalf("To tags %q", tags)
	}
	// A new transaction of the same body is delivered again: a duplicate.
	if res := exchange(strings.Replace(msg, "z9hG4bK.abc", "z9hG4bK.xyz", 1)); res.StatusCode != 200 {
		t.Fatalf("second transaction: %d", res.StatusCode)
	}
	if res := exchange(strings.Replace(msg, "MESSAGE sip:", "OPTIONS sip:", 1)); res.StatusCode != 405 {
		t.Fatalf("OPTIONS: %d", res.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "hello" || got[1] != "hello" || u.retransmits.Load() != 1 {
		t.Fatalf("delivered %q, %d retransmissions", got, u.retransmits.Load())
	}
}

// The raw UAC's closed loop against the raw UAS: every message once, in
// order per conversation, one transaction per conversation at a time.
func TestRawUACClosedLoop(t *testing.T) {
	const n, pairs = 2000, 16
	tr := newTracker(n, pairs)
	runs := runTable{m: map[int]*tracker{1: tr}}
	u, err := startRawUAS(0, 202, func(b []byte) { runs.deliver(b) })
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	c, err := startRawUAC(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	dest := u.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	r := c.beginClosed(1, n, pairs, dest, 5*time.Second, func(k, w, seq int) []byte {
		return c.request(1, k, "s"+strconv.Itoa(w), "x"+strconv.Itoa(w), appendBody(nil, 1, k, w, seq))
	})
	c.retransmit(r)
	if !tr.wait(time.Second, 10*time.Second) {
		t.Fatal("not all delivered")
	}
	s := r.stats()
	res := tr.result(n)
	if s.Codes["202"] != n || s.Retransmits != 0 || res.Got != n || res.Dups != 0 || res.Order != 0 {
		t.Fatalf("codes %v, %d retransmissions; got %d, %d duplicates, %d order violations", s.Codes, s.Retransmits, res.Got, res.Dups, res.Order)
	}
}

// A lost request is retransmitted at T1 (Timer E) and answered.
func TestRawUACRetransmits(t *testing.T) {
	var seen atomic.Int64
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // drops the first copy, answers the second
		buf := make([]byte, 65536)
		var req rawRequest
		for {
			n, src, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if seen.Add(1) == 1 || !req.parse(buf[:n]) {
				continue
			}
			_, _ = pc.WriteToUDPAddrPort(req.appendResponse(nil, 202, "Accepted", src, 1), src)
		}
	}()
	c, err := startRawUAC(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	r := c.begin(1, 1, pc.LocalAddr().(*net.UDPAddr).AddrPort(), 5*time.Second)
	c.send(r, 0, 0, c.request(1, 0, "s0", "x0", []byte("1 0 0 0 0")))
	c.retransmit(r)
	s := r.stats()
	if s.Codes["202"] != 1 || s.Retransmits != 1 || s.Requests != 2 || s.P50 < 450 {
		t.Fatalf("%+v", s)
	}
}
