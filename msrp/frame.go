package msrp

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Methods stox knows (RFC 4975 s7, RFC 7701 s7). Any other method of upper
// case letters parses; a Session answers it with 501 (CHAT-24).
const (
	MethodSEND     = "SEND"
	MethodREPORT   = "REPORT"
	MethodNICKNAME = "NICKNAME"
)

// Continuation flags of the end-line (RFC 4975 s7.1, CHAT-21d).
const (
	FlagEnd       byte = '$' // the chunk ends the message
	FlagContinued byte = '+' // more chunks follow
	FlagAborted   byte = '#' // the sender abandons the message
)

// Report header values (RFC 4975 s7.1.2, CHAT-23).
const (
	ReportYes     = "yes"
	ReportNo      = "no"
	ReportPartial = "partial"
)

// Frame is one MSRP request or response (RFC 4975 s7). The header fields
// the protocol defines have their own fields, parsed; every other header
// (Use-Nickname, Content-ID, extensions) is kept in Headers, in order
// (CHAT-24: unknown headers are ignored, not dropped).
type Frame struct {
	TID    string // transaction id
	Method string // request method; empty for a response
	Code   int    // response status code
	Reason string // response comment, may be empty

	ToPath   []URL // first header (RFC 4975 s7.1, CHAT-21a)
	FromPath []URL // second header

	MessageID     string
	ByteRange     *ByteRange // nil when absent
	SuccessReport string     // "", "yes" or "no" (lower case)
	FailureReport string     // "", "yes", "no" or "partial" (lower case)
	Status        *Status    // REPORT status; nil when absent
	Headers       []Header   // other headers, in order, before Content-Type
	ContentType   string     // last header when there is a body (CHAT-21d)

	// Body is nil for a frame without a body section (the end-line follows
	// the headers, CHAT-21e) and non-nil, possibly empty, when there is one.
	Body []byte
	// Flag is the end-line continuation flag: '$', '+' or '#'.
	Flag byte
}

// IsResponse reports whether f is a response.
func (f *Frame) IsResponse() bool { return f.Method == "" }

// Header is a header field kept as text.
type Header struct {
	Name  string
	Value string
}

// Header returns the value of the first header named name (compared without
// case) among f.Headers.
func (f *Frame) Header(name string) (string, bool) {
	for _, h := range f.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Unknown is the "*" of a Byte-Range end or total.
const Unknown = -1

// ByteRange is a Byte-Range value start-end/total (RFC 4975 s7.1): 1-based
// positions in octets; End or Total is Unknown for "*".
type ByteRange struct {
	Start, End, Total int64
}

func (r ByteRange) String() string { return string(r.appendTo(nil)) }

func (r ByteRange) appendTo(b []byte) []byte {
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '-')
	b = appendStar(b, r.End)
	b = append(b, '/')
	return appendStar(b, r.Total)
}

func appendStar(b []byte, n int64) []byte {
	if n == Unknown {
		return append(b, '*')
	}
	return strconv.AppendInt(b, n, 10)
}

// maxRangeValue bounds Byte-Range numbers (18 digits keep int64 arithmetic
// safe).
const maxRangeValue = 999_999_999_999_999_999

// ParseByteRange parses start-end/total, where end and total may be "*".
func ParseByteRange(s string) (ByteRange, error) { return parseByteRange([]byte(s)) }

func parseByteRange(s []byte) (ByteRange, error) {
	dash := bytes.IndexByte(s, '-')
	slash := bytes.IndexByte(s, '/')
	bad := func() (ByteRange, error) { return ByteRange{}, fmt.Errorf("%w: Byte-Range %q", ErrMalformed, s) }
	if dash < 0 || slash < dash {
		return bad()
	}
	var r ByteRange
	var ok bool
	if r.Start, ok = rangeNumber(s[:dash], false); !ok {
		return bad()
	}
	if r.End, ok = rangeNumber(s[dash+1:slash], true); !ok {
		return bad()
	}
	if r.Total, ok = rangeNumber(s[slash+1:], true); !ok {
		return bad()
	}
	if err := r.check(); err != nil {
		return ByteRange{}, err
	}
	return r, nil
}

// check holds the order rules: start >= 1, end >= start-1 (1-0/0 is a
// bodiless chunk), end <= total.
func (r ByteRange) check() error {
	switch {
	case r.Start < 1 || r.Start > maxRangeValue:
	case r.End != Unknown && (r.End < r.Start-1 || r.End > maxRangeValue):
	case r.Total != Unknown && (r.Total < 0 || r.Total > maxRangeValue):
	case r.Total != Unknown && r.End != Unknown && r.End > r.Total:
	case r.Total != Unknown && r.Start > r.Total+1:
	default:
		return nil
	}
	return fmt.Errorf("%w: Byte-Range %s out of order", ErrMalformed, r)
}

func rangeNumber(s []byte, star bool) (int64, bool) {
	if star && len(s) == 1 && s[0] == '*' {
		return Unknown, true
	}
	if len(s) == 0 || len(s) > 18 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Status is the value of a Status header: namespace, code and comment
// (RFC 4975 s7.1.2); "000 200 OK" reports success.
type Status struct {
	Namespace int // 000 for MSRP
	Code      int
	Reason    string
}

func (s Status) String() string { return string(s.appendTo(nil)) }

func (s Status) appendTo(b []byte) []byte {
	b = append3(b, s.Namespace)
	b = append(b, ' ')
	b = append3(b, s.Code)
	if s.Reason != "" {
		b = append(b, ' ')
		b = append(b, s.Reason...)
	}
	return b
}

func append3(b []byte, n int) []byte {
	return append(b, byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}

// Err returns nil for a 200 status and a *StatusError otherwise.
func (s Status) Err() error {
	if s.Code == StatusOK {
		return nil
	}
	return &StatusError{Code: s.Code, Reason: s.Reason}
}

// ParseStatus parses "namespace SP code [SP comment]".
func ParseStatus(v string) (Status, error) {
	if len(v) < 7 || v[3] != ' ' || !allBytes(v[:3], isDigit) || !allBytes(v[4:7], isDigit) ||
		len(v) > 7 && v[7] != ' ' {
		return Status{}, fmt.Errorf("%w: Status %q", ErrMalformed, v)
	}
	ns, _ := strconv.Atoi(v[:3])
	code, _ := strconv.Atoi(v[4:7])
	st := Status{Namespace: ns, Code: code}
	if len(v) > 8 {
		st.Reason = trimSpace(v[8:])
	}
	if !validText(st.Reason) {
		return Status{}, fmt.Errorf("%w: Status %q", ErrMalformed, v)
	}
	return st, nil
}

// Validate checks that f can be written and that the bytes AppendTo gives
// parse back to f (RFC 4975 s9, CHAT-20, CHAT-21).
func (f *Frame) Validate() error {
	if !validTID(f.TID) {
		return fmt.Errorf("%w: transaction id %q", ErrInvalid, f.TID)
	}
	if f.Method != "" {
		if !allBytes(f.Method, isUpper) || f.Code != 0 || f.Reason != "" {
			return fmt.Errorf("%w: method %q (a request has no status code)", ErrInvalid, f.Method)
		}
	} else {
		if f.Code < 0 || f.Code > 999 {
			return fmt.Errorf("%w: status code %d", ErrInvalid, f.Code)
		}
		if f.Body != nil {
			return fmt.Errorf("%w: a response has no body", ErrInvalid)
		}
		if f.Reason != "" && (!validText(f.Reason) || f.Reason != trimSpace(f.Reason)) {
			return fmt.Errorf("%w: comment %q", ErrInvalid, f.Reason)
		}
	}
	if len(f.ToPath) == 0 || len(f.FromPath) == 0 {
		return fmt.Errorf("%w: To-Path and From-Path are required", ErrInvalid)
	}
	for _, path := range [][]URL{f.ToPath, f.FromPath} {
		for _, u := range path {
			if err := u.Validate(); err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
	}
	if f.MessageID != "" && !validMessageID(f.MessageID) {
		return fmt.Errorf("%w: Message-ID %q", ErrInvalid, f.MessageID)
	}
	if f.ByteRange != nil {
		if err := f.ByteRange.check(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	switch f.SuccessReport {
	case "", ReportYes, ReportNo:
	default:
		return fmt.Errorf("%w: Success-Report %q", ErrInvalid, f.SuccessReport)
	}
	switch f.FailureReport {
	case "", ReportYes, ReportNo, ReportPartial:
	default:
		return fmt.Errorf("%w: Failure-Report %q", ErrInvalid, f.FailureReport)
	}
	if s := f.Status; s != nil {
		if s.Namespace < 0 || s.Namespace > 999 || s.Code < 0 || s.Code > 999 ||
			s.Reason != "" && (!validText(s.Reason) || s.Reason != trimSpace(s.Reason)) {
			return fmt.Errorf("%w: Status %q", ErrInvalid, s.String())
		}
	}
	for _, h := range f.Headers {
		if !validHeaderName(h.Name) || knownHeader(h.Name) {
			return fmt.Errorf("%w: header name %q", ErrInvalid, h.Name)
		}
		if !validText(h.Value) || h.Value != trimSpace(h.Value) {
			return fmt.Errorf("%w: header %s value %q", ErrInvalid, h.Name, h.Value)
		}
	}
	if f.ContentType != "" && (!validText(f.ContentType) || f.ContentType != trimSpace(f.ContentType)) {
		return fmt.Errorf("%w: Content-Type %q", ErrInvalid, f.ContentType)
	}
	if f.Body != nil && f.ContentType == "" {
		return fmt.Errorf("%w: a body needs a Content-Type (RFC 4975 s7.1)", ErrInvalid)
	}
	switch f.Flag {
	case FlagEnd, FlagContinued, FlagAborted:
	default:
		return fmt.Errorf("%w: continuation flag %q", ErrInvalid, f.Flag)
	}
	if f.Body != nil && !bodySafe(f.Body, f.TID, f.Flag) {
		return fmt.Errorf("%w: body contains the end-line of transaction %s (RFC 4975 s7.1)", ErrInvalid, f.TID)
	}
	return nil
}

// AppendTo appends the wire form of f to b, after Validate.
func (f *Frame) AppendTo(b []byte) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return b, err
	}
	b = f.appendHead(b)
	if f.Body != nil {
		b = append(b, f.Body...)
	}
	return appendEndLine(b, f.TID, f.Flag, f.Body != nil), nil
}

// Bytes returns the wire form of f.
func (f *Frame) Bytes() ([]byte, error) {
	return f.AppendTo(make([]byte, 0, 256+len(f.Body)))
}

// WriteTo writes f to w in one Write call.
func (f *Frame) WriteTo(w io.Writer) (int64, error) {
	b, err := f.Bytes()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// appendHead appends the start line and headers, and the blank line when
// there is a body. Header order (RFC 4975 s7.1, CHAT-21): To-Path,
// From-Path, the MSRP headers, other headers, Content-Type last.
func (f *Frame) appendHead(b []byte) []byte {
	b = append(b, "MSRP "...)
	b = append(b, f.TID...)
	b = append(b, ' ')
	if f.Method != "" {
		b = append(b, f.Method...)
	} else {
		b = append3(b, f.Code)
		if f.Reason != "" {
			b = append(b, ' ')
			b = append(b, f.Reason...)
		}
	}
	b = append(b, "\r\nTo-Path: "...)
	b = appendPath(b, f.ToPath)
	b = append(b, "\r\nFrom-Path: "...)
	b = appendPath(b, f.FromPath)
	b = append(b, "\r\n"...)
	if f.MessageID != "" {
		b = appendHeader(b, "Message-ID", f.MessageID)
	}
	if f.ByteRange != nil {
		b = append(b, "Byte-Range: "...)
		b = f.ByteRange.appendTo(b)
		b = append(b, "\r\n"...)
	}
	if f.SuccessReport != "" {
		b = appendHeader(b, "Success-Report", f.SuccessReport)
	}
	if f.FailureReport != "" {
		b = appendHeader(b, "Failure-Report", f.FailureReport)
	}
	if f.Status != nil {
		b = append(b, "Status: "...)
		b = f.Status.appendTo(b)
		b = append(b, "\r\n"...)
	}
	for _, h := range f.Headers {
		b = appendHeader(b, h.Name, h.Value)
	}
	if f.ContentType != "" {
		b = appendHeader(b, "Content-Type", f.ContentType)
	}
	if f.Body != nil {
		b = append(b, "\r\n"...)
	}
	return b
}

func appendHeader(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// appendEndLine appends the end-line, preceded by the CRLF that closes a
// body (RFC 4975 s7.1).
func appendEndLine(b []byte, tid string, flag byte, body bool) []byte {
	if body {
		b = append(b, "\r\n"...)
	}
	b = append(b, "-------"...)
	b = append(b, tid...)
	return append(b, flag, '\r', '\n')
}

// endLinePrefix is "\r\n-------" + tid: what the parser searches for in a
// body.
func endLinePrefix(tid string) []byte {
	p := make([]byte, 0, 9+len(tid))
	p = append(p, "\r\n-------"...)
	return append(p, tid...)
}

// findEndLine finds the first end-line of transaction tid in data (which
// starts at the CRLF that may precede it): the offset of its CRLF and the
// flag. need reports that data ends inside what may still become an
// end-line, so the caller must wait for more bytes before deciding.
// A match must be "\r\n-------" tid, a flag, and "\r\n": text in a body that
// only resembles an end-line is body (RFC 4975 s7.1; the sender must keep
// the real end-line out of the body).
func findEndLine(data, prefix []byte, from int) (at int, flag byte, need bool, ok bool) {
	for {
		i := bytes.Index(data[from:], prefix)
		if i < 0 {
			return 0, 0, false, false
		}
		at = from + i
		rest := data[at+len(prefix):]
		if len(rest) < 3 {
			return at, 0, true, false
		}
		if isFlag(rest[0]) && rest[1] == '\r' && rest[2] == '\n' {
			return at, rest[0], false, true
		}
		from = at + 1
	}
}

func isFlag(c byte) bool { return c == FlagEnd || c == FlagContinued || c == FlagAborted }

// bodySafe reports whether the frame with this body parses back with the
// same body: no end-line inside it, and none made of its tail and the real
// end-line.
func bodySafe(body []byte, tid string, flag byte) bool {
	prefix := endLinePrefix(tid)
	if _, _, _, ok := findEndLine(body, prefix, 0); ok {
		return false
	}
	// An end-line starting in the last bytes of the body and completed by
	// the frame's own CRLF and end-line.
	tail := len(body) - (len(prefix) + 2)
	if tail < 0 {
		tail = 0
	}
	joined := make([]byte, 0, len(body)-tail+len(prefix)+3)
	joined = append(joined, body[tail:]...)
	joined = append(joined, prefix...)
	joined = append(joined, flag, '\r', '\n')
	at, _, _, ok := findEndLine(joined, prefix, 0)
	return ok && at == len(body)-tail
}

// validTID: a transaction id the parser accepts. RFC 4975 s9 ident is an
// alphanumeric and 3 to 31 more of ALPHANUM . - + % =; stox reads ids of 1
// to 64 characters from peers and always makes 16-character random ones
// (CHAT-20).
func validTID(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && isAlphaNum(s[0]) && allBytes(s, isIdentChar)
}

// validMessageID: RFC 4975 ident, read leniently like validTID (TV-28 uses
// "m1"), up to 256 characters.
func validMessageID(s string) bool {
	return len(s) >= 1 && len(s) <= 256 && isAlphaNum(s[0]) && allBytes(s, isIdentChar)
}

func isIdentChar(c byte) bool {
	return isAlphaNum(c) || c == '.' || c == '-' || c == '+' || c == '%' || c == '='
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// validHeaderName: hname = ALPHA *token.
func validHeaderName(s string) bool {
	return s != "" && isAlpha(s[0]) && allBytes(s, isTokenChar)
}

// validText: utf8text = *(HTAB / %x20-7E / UTF8-NONASCII).
func validText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

func trimSpace(s string) string { return strings.Trim(s, " \t") }

func validTextBytes(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}

// knownHeader reports the headers Frame has fields for.
func knownHeader(name string) bool {
	_, ok := headerKind(name)
	return ok
}

type hdrKind int

const (
	hToPath hdrKind = iota
	hFromPath
	hMessageID
	hByteRange
	hSuccessReport
	hFailureReport
	hStatus
	hContentType
)

// headerKind classifies a header name; names compare without case (the
// RFC 4975 ABNF names are case-insensitive strings).
func headerKind(name string) (hdrKind, bool) {
	switch len(name) {
	case 6:
		if strings.EqualFold(name, "Status") {
			return hStatus, true
		}
	case 7:
		if strings.EqualFold(name, "To-Path") {
			return hToPath, true
		}
	case 9:
		if strings.EqualFold(name, "From-Path") {
			return hFromPath, true
		}
	case 10:
		if strings.EqualFold(name, "Message-ID") {
			return hMessageID, true
		}
		if strings.EqualFold(name, "Byte-Range") {
			return hByteRange, true
		}
	case 12:
		if strings.EqualFold(name, "Content-Type") {
			return hContentType, true
		}
	case 14:
		if strings.EqualFold(name, "Success-Report") {
			return hSuccessReport, true
		}
		if strings.EqualFold(name, "Failure-Report") {
			return hFailureReport, true
		}
	}
	return 0, false
}
