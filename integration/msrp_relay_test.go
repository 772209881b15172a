//go:build unix

package integration

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
	"github.com/stox-gw/stox/msrp"
)

// TestMSRPRelayMegabyte: a 1 MB message each way between stox's msrp
// package and a raw MSRP endpoint behind Kamailio's RFC 4976 relay, chunked
// below the relay's frame limit and reassembled intact (CHAT-26, the
// issue's relay test). The relay is an independent MSRP parser: a frame it
// cannot parse is dropped, and the message would not arrive whole.
func TestMSRPRelayMegabyte(t *testing.T) {
	testbed.Need(t, "kamailio")
	testbed.NeedKamailioModules(t, "msrp")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := testbed.StartKamailio(ctx, testbed.KamailioConfig{MSRP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	peer, err := testbed.DialMSRP(ctx, k.MSRPAddr, "mb"+strconv.FormatInt(time.Now().UnixNano()%1e9, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	usePath, err := peer.Auth(ctx, k.MSRPURI, "")
	if err != nil {
		t.Fatal(err)
	}

	l, err := msrp.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan *msrp.Message, 1)
	local := l.URL("127.0.0.1")
	remote, err := msrp.ParsePath(usePath + " " + peer.URI)
	if err != nil {
		t.Fatal(err)
	}
	limits := msrp.DefaultLimits()
	limits.MaxMessageBytes = 2 << 20
	s, err := msrp.Dial(ctx, local, remote, msrp.WithDialer(l.Dialer()), msrp.WithLimits(limits),
		msrp.WithHandler(msrp.Handler{Message: func(_ *msrp.Session, m *msrp.Message) { got <- m }}))
	if err != nil {
		t.Fatalf("dial through the relay: %v\n%s", err, k.Logs())
	}
	defer s.Close()

	big := bytes.Repeat([]byte("stox-msrp-relay-"), 1<<16) // 1 MiB
	sent := make(chan error, 1)
	go func() { sent <- s.Send(ctx, &msrp.Message{ContentType: "text/plain", Body: big}) }()
	// The peer reassembles by Byte-Range.
	var buf []byte
	var msgID string
	chunks := 0
	for len(buf) < len(big) {
		f, err := peer.Next(ctx)
		if err != nil {
			t.Fatalf("after %d chunks (%d bytes): %v\n%s", chunks, len(buf), err, k.Logs())
		}
		if f.Method != "SEND" || f.Body == "" {
			continue
		}
		if msgID == "" {
			msgID = f.Header("Message-ID")
		}
		if f.Header("Message-ID") != msgID {
			t.Fatalf("a chunk of another message:\n%s", f.Raw)
		}
		start, _, ok := strings.Cut(f.Header("Byte-Range"), "-")
		if n, err := strconv.Atoi(start); !ok || err != nil || n != len(buf)+1 {
			t.Fatalf("Byte-Range %q after %d bytes", f.Header("Byte-Range"), len(buf))
		}
		buf = append(buf, f.Body...)
		chunks++
	}
	if !bytes.Equal(buf, big) {
		t.Fatalf("1 MiB arrived altered (%d bytes)", len(buf))
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}
	t.Logf("stox -> relay -> peer: 1 MiB in %d chunks", chunks)

	// Back: the peer sends 1 MiB in chunks the relay can look into
	// (frames under 11240 bytes, see the relay's configuration).
	peerSend(t, peer, []string{usePath, local.String()}, "back", "text/plain", string(big), 8000)
	select {
	case m := <-got:
		if !bytes.Equal(m.Body, big) {
			t.Fatalf("1 MiB from the peer arrived altered (%d bytes)", len(m.Body))
		}
	case <-ctx.Done():
		t.Fatalf("1 MiB from the peer did not arrive\n%s", k.Logs())
	}
}
