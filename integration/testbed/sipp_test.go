//go:build unix

package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runUAS starts a MESSAGE receiver on a free port and returns it and its
// host:port.
func runUAS(t *testing.T, ctx context.Context, uas UAS, transport string) (*SIPp, string) {
	t.Helper()
	port := FreePort(t, TCPUDP)
	args := append(uas.Args(), "-p", strconv.Itoa(port), "-t", transport)
	s, err := RunSIPp(ctx, t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Stop()
		if t.Failed() {
			t.Logf("UAS:\n%s%s", s.ErrLog(), s.Stats())
		}
	})
	return s, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func runUAC(t *testing.T, ctx context.Context, uac UAC, transport, dest string) *SIPp {
	t.Helper()
	dir := t.TempDir()
	args, err := uac.Args(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := RunSIPp(ctx, dir, append(args, "-t", transport, dest)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func TestSIPpUACToUAS(t *testing.T) {
	Need(t, "sipp")
	for _, tc := range []struct {
		transport string
		code      int
	}{{"u1", 404}, {"u1", 200}, {"t1", 202}} {
		t.Run(tc.transport+"-"+strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			// Over TCP, SIPp fails a call whose connection closes right
			// after its final response, as a UAS exiting after -m N does:
			// keep the TCP UAS up until the UAC is done.
			count := 3
			if tc.transport == "t1" {
				count = 0
			}
			uas, dest := runUAS(t, ctx, UAS{Code: tc.code, Count: count}, tc.transport)
			t.Logf("UAS listening in %v", time.Since(start).Round(time.Millisecond))
			bodies := []string{"first", "second message", "<b>3</b> & more"}
			uac := UAC{
				RequestURI: "sip:alice@example.test;gr=phone",
				From:       `"Bob" <sip:bob@sip.example.test>`,
				Subject:    "hi there",
			}
			for _, b := range bodies {
				uac.Messages = append(uac.Messages, UACMessage{Body: b, Expect: tc.code})
			}
			client := runUAC(t, ctx, uac, tc.transport, dest)
			if err := client.Wait(); err != nil {
				t.Fatalf("UAC: %v\n%s", err, client.Stats())
			}
			finish := uas.Wait
			if count == 0 {
				finish = uas.Stop
			}
			if err := finish(); err != nil {
				t.Fatalf("UAS: %v", err)
			}
			got, err := uas.Received()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(bodies) {
				t.Fatalf("UAS received %d messages, want %d", len(got), len(bodies))
			}
			for i, m := range got {
				if m.Method() != "MESSAGE" || m.RequestURI() != uac.RequestURI || m.Body != bodies[i] {
					t.Errorf("message %d: %q %q body %q", i, m.Method(), m.RequestURI(), m.Body)
				}
				if m.Header("Subject") != "hi there" || m.Header("c") != "text/plain" ||
					!strings.HasPrefix(m.Header("From"), `"Bob" <sip:bob@sip.example.test>;tag=`) ||
					m.Header("To") != "<sip:alice@example.test;gr=phone>" ||
					m.Header("Content-Length") != strconv.Itoa(len(bodies[i])) || m.Header("Call-ID") == "" {
					t.Errorf("message %d headers: %q", i, m.Headers)
				}
				if want := map[string]string{"u1": "UDP", "t1": "TCP"}[tc.transport]; m.Transport != want || m.Sent {
					t.Errorf("message %d: transport %q sent %v", i, m.Transport, m.Sent)
				}
			}
			// The UAC saw the answers too.
			all, err := client.Messages()
			if err != nil {
				t.Fatal(err)
			}
			finals := 0
			for _, m := range all {
				if !m.Sent && m.StatusCode() == tc.code && m.Method() == "MESSAGE" {
					finals++
				}
			}
			if finals != len(bodies) {
				t.Errorf("UAC saw %d %d responses, want %d", finals, tc.code, len(bodies))
			}
		})
	}
}

func TestSIPpUACWrongStatusFails(t *testing.T) {
	Need(t, "sipp")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, dest := runUAS(t, ctx, UAS{Code: 404}, "u1")
	client := runUAC(t, ctx, UAC{
		RequestURI: "sip:alice@example.test",
		Messages:   []UACMessage{{Body: "ok", Expect: 404}, {Body: "not ok", Expect: 202}},
	}, "u1", dest)
	err := client.Wait()
	var se *SIPpError
	if !errors.As(err, &se) || se.Code != 1 {
		t.Fatalf("UAC expecting 202, answered 404: %v", err)
	}
	if !strings.Contains(se.Log, "expected status 202, got 404") {
		t.Errorf("error log does not say what went wrong:\n%s", se.Log)
	}
}

func TestSIPpNoAnswerAndRawSIP(t *testing.T) {
	Need(t, "sipp")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const req = "MESSAGE sip:alice@example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/{transport} {local};branch=z9hG4bK-raw-1;rport\r\n" +
		"From: <sip:bob@sip.example.test>;tag=raw1\r\n" +
		"To: <sip:alice@example.test>\r\n" +
		"Call-ID: raw-1@testbed\r\n" +
		"CSeq: 7 MESSAGE\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Length: 5\r\n\r\nhello"
	for _, network := range []string{"udp", "tcp"} {
		transport := map[string]string{"udp": "u1", "tcp": "t1"}[network]
		uas, dest := runUAS(t, ctx, UAS{Code: 415, Reason: "No Thanks"}, transport)
		resp, err := SendRawSIP(ctx, network, dest, []byte(req))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != 415 || resp.StartLine != "SIP/2.0 415 No Thanks" || resp.Header("CSeq") != "7 MESSAGE" ||
			resp.Header("i") != "raw-1@testbed" {
			t.Errorf("%s: response %q", network, resp.Raw)
		}
		got, err := uas.Received()
		if err != nil || len(got) != 1 || got[0].Body != "hello" || !strings.Contains(got[0].Header("Via"), "SIP/2.0/"+strings.ToUpper(network)+" 127.0.0.1:") {
			t.Errorf("%s: UAS received %v (%v)", network, got, err)
		}
	}

	_, dest := runUAS(t, ctx, UAS{Code: 299}, "u1")
	if resp, err := SendRawSIP(ctx, "udp", dest, []byte(req)); err != nil || resp.StatusCode() != 500 ||
		!strings.Contains(resp.StartLine, "unsupported -key code 299") {
		t.Errorf("UAS with an unsupported code: %v, %v", resp, err)
	}

	silent, dest := runUAS(t, ctx, UAS{}, "u1")
	short, cancelShort := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancelShort()
	if resp, err := SendRawSIP(short, "udp", dest, []byte(req)); !errors.Is(err, ErrNoSIPResponse) {
		t.Errorf("no-answer UAS: %v, %v", resp, err)
	}
	if got, err := silent.Received(); err != nil || len(got) != 1 || got[0].Method() != "MESSAGE" {
		t.Errorf("no-answer UAS received %v (%v)", got, err)
	}
	start := time.Now()
	_ = silent.Stop() // SIGUSR1 waits for the held call; Stop kills it after 1 s.
	t.Logf("stopping a UAS holding a call took %v", time.Since(start).Round(time.Millisecond))
}

func TestParseTrace(t *testing.T) {
	// The first body holds a blank line and dashes, as a trace entry
	// separator does: only the stated length tells where it ends.
	sent := "MESSAGE sip:a@example.test SIP/2.0\r\n" +
		"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n" +
		"Subject: folded\r\n line\r\n" +
		"Content-Length: 29\r\n\r\n" +
		"body\r\n\r\n------------------------\n\n"
	received := "SIP/2.0 202 Accepted\r\nCSeq: 1 MESSAGE\r\n\r\n"
	trace := "----------------------------------------------- 2026-11-22 03:31:23.910845\n" +
		fmt.Sprintf("UDP message sent (%d bytes):\n\n%s\n", len(sent), sent) +
		"----------------------------------------------- 2026-11-22 03:31:23.917407\n" +
		fmt.Sprintf("TCP message received [%d] bytes :\n\n%s\n", len(received), received)
	msgs, err := ParseTrace(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	if !m.Sent || m.Transport != "UDP" || m.Time != "2026-11-22 03:31:23.910845" || m.Method() != "MESSAGE" ||
		m.Header("Via") != "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1" || m.Header("subject") != "folded line" ||
		m.Body != "body\r\n\r\n------------------------\n\n" {
		t.Errorf("first: %+v", m)
	}
	r := msgs[1]
	if r.Sent || r.Transport != "TCP" || r.StatusCode() != 202 || r.Method() != "MESSAGE" || r.Body != "" || r.RequestURI() != "" {
		t.Errorf("second: %+v", r)
	}
	if _, err := ParseTrace(strings.NewReader("not a trace\n")); err == nil {
		t.Error("garbage parsed as a trace")
	}
}
