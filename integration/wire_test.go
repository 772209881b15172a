//go:build unix

package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stox-gw/stox/integration/testbed"
)

// TestWireFormatTshark has Wireshark's SIP dissector, a parser independent
// of sipgo and SIPp, read what stox sends both ways (TV-01, TV-02, TV-03,
// IM-04, IM-06, ADDR-09, ADDR-15).
func TestWireFormatTshark(t *testing.T) {
	testbed.Need(t, "tshark")
	r := newRig(t)
	capture, err := testbed.StartCapture(r.ctx, t.TempDir(), fmt.Sprintf("udp port %d or udp port %d", r.uasPort, r.sipPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(capture.Stop)
	uas := r.uas(testbed.UAS{Code: 200, Count: 1}, "udp")
	r.alice.Send(`<message to='romeo\40example.net@` + component + `' id='tv02' type='chat' xml:lang='en'><subject>Hi</subject><thread>29377446-0CBB-4296-8958-590D79094C50</thread><body>Art thou not Romeo, and a Montague?</body></message>`)
	if err := uas.Wait(); err != nil {
		t.Fatalf("uas: %v%s", err, r.logs())
	}
	res := r.sendRaw("udp", rawMessage("sip:alice@"+xmppDomain, "sip:bob@"+component, "tv03", "", "Neither, fair saint, if either thee dislike."))
	if res.StatusCode() != 202 {
		t.Fatalf("S->X: %s", res.StartLine)
	}
	fields := []string{"sip.Method", "sip.r-uri", "sip.from.addr", "sip.from.tag", "sip.to.addr", "sip.to.tag",
		"sip.Max-Forwards", "sip.CSeq.method", "sip.Content-Type", "sip.Content-Length", "sip.Contact",
		"sip.Subject", "sip.Call-ID", "sip.Content-Language", "sip.Status-Code", "_ws.malformed"}
	rows, err := capture.Fields(r.ctx, "sip", fields...)
	if err != nil {
		t.Fatal(err)
	}
	get := func(row []string, name string) string {
		for i, f := range fields {
			if f == name && i < len(row) {
				return row[i]
			}
		}
		return ""
	}
	var request, accepted []string
	for _, row := range rows {
		if get(row, "_ws.malformed") != "" {
			t.Errorf("tshark flags a malformed packet: %v", row)
		}
		switch {
		case get(row, "sip.Method") == "MESSAGE" && get(row, "sip.r-uri") == "sip:romeo@example.net":
			request = row
		case get(row, "sip.Status-Code") == "202":
			accepted = row
		}
	}
	if request == nil || accepted == nil {
		t.Fatalf("captured rows: %q", rows)
	}
	want := map[string]string{
		"sip.from.addr":        "sip:alice@" + xmppDomain + ";gr=phone",
		"sip.to.addr":          "sip:romeo@example.net",
		"sip.to.tag":           "",
		"sip.Max-Forwards":     "70",
		"sip.CSeq.method":      "MESSAGE",
		"sip.Content-Length":   "35",
		"sip.Contact":          "",
		"sip.Subject":          "Hi",
		"sip.Call-ID":          "29377446-0CBB-4296-8958-590D79094C50",
		"sip.Content-Language": "en",
	}
	for f, v := range want {
		if got := get(request, f); got != v {
			t.Errorf("MESSAGE %s = %q, want %q", f, got, v)
		}
	}
	if get(request, "sip.from.tag") == "" {
		t.Error("MESSAGE From has no tag")
	}
	if ct := strings.ToLower(get(request, "sip.Content-Type")); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "utf-8") {
		t.Errorf("Content-Type %q", ct)
	}
	if get(accepted, "sip.Contact") != "" || get(accepted, "sip.Content-Length") != "0" {
		t.Errorf("202 carries a Contact or a body: %v", accepted)
	}
}
