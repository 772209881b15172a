package msrp

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Benchmarks measure speed and memory (STYLE.md); nothing here asserts a
// timing.

func benchChunk(b *testing.B) *Frame {
	b.Helper()
	m := &Message{ID: "bench16k", ContentType: "application/octet-stream", Body: randomBody(16<<10, 9)}
	frames, err := Chunks(m, []URL{tvX2S}, []URL{tvS2X}, 16<<10, nil)
	if err != nil {
		b.Fatal(err)
	}
	return frames[0]
}

func benchParse(b *testing.B, raw []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	p := NewParser(Limits{})
	for b.Loop() {
		if _, err := p.Write(raw); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSmallSEND(b *testing.B) { benchParse(b, golden(b, "tv27-send.msrp")) }

func BenchmarkParse16KChunk(b *testing.B) {
	raw, err := benchChunk(b).Bytes()
	if err != nil {
		b.Fatal(err)
	}
	benchParse(b, raw)
}

func benchSerialize(b *testing.B, f *Frame) {
	raw, err := f.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("AppendTo", func(b *testing.B) { // validates every field
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		buf := make([]byte, 0, len(raw))
		for b.Loop() {
			if buf, err = f.AppendTo(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("trusted", func(b *testing.B) { // a Session's own frames: no validation
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		buf := make([]byte, 0, len(raw))
		for b.Loop() {
			buf = encodeTrusted(buf[:0], f)
		}
	})
}

func BenchmarkSerializeSmallSEND(b *testing.B) {
	benchSerialize(b, parseOne(b, golden(b, "tv27-send.msrp")))
}

func BenchmarkSerialize16KChunk(b *testing.B) { benchSerialize(b, benchChunk(b)) }

// BenchmarkThroughput sends 1 MiB messages over loopback: raw TCP (16 KiB
// writes, a one-byte acknowledgement per MiB) next to one MSRP Session
// (16 KiB chunks, a 200 per chunk, Send returning on the last one), in the
// same run so that the ratio is what counts (issue 5: target >= 0.5x).
func BenchmarkThroughput(b *testing.B) {
	const size = 1 << 20
	body := randomBody(size, 3)

	b.Run("raw-tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		srvDone := make(chan struct{})
		go func() {
			defer close(srvDone)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				if _, err := io.ReadFull(c, buf[:0]); err != nil {
					return
				}
				for n := 0; n < size; {
					m, err := c.Read(buf)
					if err != nil {
						return
					}
					n += m
				}
				if _, err := c.Write([]byte{1}); err != nil {
					return
				}
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		ack := make([]byte, 1)
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			for off := 0; off < size; off += 16 << 10 {
				if _, err := c.Write(body[off : off+16<<10]); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := io.ReadFull(c, ack); err != nil {
				b.Fatal(err)
			}
		}
		c.Close()
		<-srvDone
	})

	for _, c := range []struct {
		name string
		fr   string
	}{{"msrp-session", ""}, {"msrp-session-fr-no", ReportNo}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			l, err := Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			got := make(chan int, 16)
			urlB := l.URL("127.0.0.1")
			urlA := URL{Host: "127.0.0.1", Port: 9, SessionID: NewSessionID(), Transport: "tcp"}
			sb, err := l.Expect(urlB, []URL{urlA}, WithHandler(Handler{Message: func(_ *Session, m *Message) { got <- len(m.Body) }}))
			if err != nil {
				b.Fatal(err)
			}
			defer sb.Close()
			sa, err := Dial(ctx, urlA, []URL{urlB})
			if err != nil {
				b.Fatal(err)
			}
			defer sa.Close()
			b.ReportAllocs()
			b.SetBytes(size)
			for b.Loop() {
				if err := sa.Send(ctx, &Message{ContentType: "application/octet-stream", Body: body, FailureReport: c.fr}); err != nil {
					b.Fatal(err)
				}
				if n := <-got; n != size {
					b.Fatalf("received %d octets", n)
				}
			}
		})
	}
}

// BenchmarkHoldSessions holds 10,000 idle sessions in one process (5,000
// connected pairs over loopback, both ends here, so every figure counts
// both sides) after one message each way, and reports the memory they hold
// (issue 5: 10k concurrent sessions within 1 GB RSS). One iteration is the
// whole set-up; run it with -benchtime=1x.
func BenchmarkHoldSessions(b *testing.B) {
	const pairs = 5000
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		rssBefore := rssBytes()
		l, err := Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		var all []*Session
		for i := 0; i < pairs; i++ {
			urlB := l.URL("127.0.0.1")
			urlA := URL{Host: "127.0.0.1", Port: 9, SessionID: NewSessionID(), Transport: "tcp"}
			sb, err := l.Expect(urlB, []URL{urlA})
			if err != nil {
				b.Fatal(err)
			}
			sa, err := Dial(ctx, urlA, []URL{urlB})
			if err != nil {
				b.Fatalf("pair %d: %v", i, err)
			}
			<-sb.Bound()
			if err := sa.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("hello")}); err != nil {
				b.Fatal(err)
			}
			if err := sb.Send(ctx, &Message{ContentType: "text/plain", Body: []byte("hi")}); err != nil {
				b.Fatal(err)
			}
			all = append(all, sa, sb)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(len(all)), "heap-B/session")
		b.ReportMetric(float64(rssBytes()-rssBefore)/float64(len(all)), "rss-B/session")
		b.ReportMetric(float64(rssBytes()-rssBefore)/(1<<20)*10000/float64(len(all)), "rss-MB/10k-sessions")
		for _, s := range all {
			s.Close()
		}
		l.Close()
	}
}

// rssBytes is the process's resident set size (Linux), 0 elsewhere.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}
