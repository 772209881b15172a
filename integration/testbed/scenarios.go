//go:build unix

package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sipReason holds the RFC 3261 reason phrases of the status codes the
// scenarios know.
var sipReason = map[int]string{
	200: "OK", 202: "Accepted",
	400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	408: "Request Timeout", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
	416: "Unsupported URI Scheme", 420: "Bad Extension", 480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 486: "Busy Here", 488: "Not Acceptable Here",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 513: "Message Too Large", 603: "Decline",
	606: "Not Acceptable",
}

// UAS describes a SIPp MESSAGE receiver (uas_message.xml, or
// uas_message_noanswer.xml when Code is 0).
type UAS struct {
	// Code answers every MESSAGE: 200, 202, 400, 403, 404, 405, 408, 413,
	// 415, 480, 486, 488, 500, 501, 503, 603 or 606 (SIPp cannot take a status
	// code from a key; another code is answered 500 and fails the call).
	// 0 never answers.
	Code int
	// Reason is the reason phrase; default the RFC 3261 one.
	Reason string
	// Count makes SIPp exit after that many MESSAGEs (-m); 0 runs until Stop.
	Count int
}

// Args returns the sipp arguments for u, to which the caller adds at least
// -p PORT (and -t t1 for TCP).
func (u UAS) Args() []string {
	var args []string
	if u.Code == 0 {
		args = []string{"-sf", Scenario("uas_message_noanswer.xml")}
	} else {
		reason := u.Reason
		if reason == "" {
			reason = sipReason[u.Code]
		}
		if reason == "" {
			reason = "Unknown"
		}
		args = []string{"-sf", Scenario("uas_message.xml"), "-key", "code", strconv.Itoa(u.Code), "-key", "reason", reason}
	}
	if u.Count > 0 {
		args = append(args, "-m", strconv.Itoa(u.Count))
	}
	// No dialogs here: never send a BYE for an aborted "call".
	return append(args, "-default_behaviors", "all,-bye")
}

// UAC describes MESSAGEs sent by SIPp (uac_message.xml), one at a time, in
// order, each checked for its expected final status.
//
// Over TCP, SIPp counts a call as failed, with nothing in its error log,
// when the peer closes the connection right after the final response (as a
// SIPp UAS that exits after -m N does): keep the peer up until Wait returns.
type UAC struct {
	RequestURI  string // required, e.g. "sip:alice@example.test"
	From        string // name-addr or URI, without tag; default <sip:sipp@sipp.invalid>
	To          string // default the Request-URI
	ContentType string // default "text/plain"
	Subject     string // sent as an empty Subject when ""
	Messages    []UACMessage
}

// UACMessage is one MESSAGE of a UAC run.
type UACMessage struct {
	// Body is sent as is, without a line ending added. SIPp's injection
	// files cannot carry ';' or a line break, nor start with '#'.
	Body string
	// Expect is the final status the MESSAGE must get, e.g. 202 or 404
	// (one of those in sipReason).
	Expect int
}

// Args writes the injection file into dir (the directory given to RunSIPp)
// and returns the sipp arguments for u, including a reserved local port
// (-p). The caller adds the transport (-t t1 for TCP) and the destination
// host:port.
func (u UAC) Args(dir string) ([]string, error) {
	if u.RequestURI == "" {
		return nil, fmt.Errorf("testbed: UAC.RequestURI is required")
	}
	if len(u.Messages) == 0 {
		return nil, fmt.Errorf("testbed: UAC has no Messages")
	}
	from, to, ctype := u.From, u.To, u.ContentType
	if from == "" {
		from = "<sip:sipp@sipp.invalid>"
	}
	if to == "" {
		to = u.RequestURI
	}
	if ctype == "" {
		ctype = "text/plain"
	}
	var csv strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	for i, m := range u.Messages {
		if strings.ContainsAny(m.Body, ";\r\n") || strings.HasPrefix(m.Body, "#") {
			return nil, fmt.Errorf("testbed: UAC message %d: SIPp cannot send body %q (no ';', no line break, no leading '#'): use SendRawSIP", i, m.Body)
		}
		if sipReason[m.Expect] == "" {
			return nil, fmt.Errorf("testbed: UAC message %d: uac_message.xml cannot expect status %d", i, m.Expect)
		}
		fmt.Fprintf(&csv, "%s;%d\n", m.Body, m.Expect)
	}
	inf := filepath.Join(dir, "uac_messages.csv")
	if err := os.WriteFile(inf, []byte(csv.String()), 0o644); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	port, err := ReservePort(TCPUDP)
	if err != nil {
		return nil, err
	}
	return []string{"-sf", Scenario("uac_message.xml"),
		"-key", "ruri", u.RequestURI,
		"-key", "from", nameAddr(from),
		"-key", "to", nameAddr(to),
		"-key", "content_type", ctype,
		"-key", "subject", u.Subject,
		"-inf", inf,
		"-m", strconv.Itoa(len(u.Messages)), "-l", "1", "-r", "1000",
		"-p", strconv.Itoa(port),
		"-default_behaviors", "all,-bye",
	}, nil
}

// nameAddr wraps a bare URI in <> so that its parameters stay URI
// parameters and the tag added by the scenario is a header parameter.
func nameAddr(s string) string {
	if strings.Contains(s, "<") {
		return s
	}
	return "<" + s + ">"
}
