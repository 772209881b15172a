// Package msrp will hold stox's MSRP stack (RFC 4975 framing, chunking and
// reports, sessions over TCP and TLS, RFC 7701 NICKNAME), stdlib only.
//
// Nothing is implemented yet: MSRP chat sessions are a later issue, and stox
// refuses chat.mode = "msrp" or "auto" at start-up until then.
package msrp
