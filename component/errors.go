package component

import "errors"

// Sentinel errors of the component package.
var (
	// ErrHandshakeRejected: the XMPP server refused the component (wrong secret,
	// unknown or already connected domain).
	ErrHandshakeRejected = errors.New("component: handshake rejected")
	// ErrNotAuthorized: the server refused the component secret
	// (not-authorized); retrying cannot fix it.
	ErrNotAuthorized = errors.New("component: the XMPP server refused the secret (not-authorized)")
	// ErrNotConnected: there is no component stream to write to.
	ErrNotConnected = errors.New("component: not connected to the XMPP server")
	// ErrQueueFull: a bounded queue is full; the sender gets resource-constraint / 503.
	ErrQueueFull = errors.New("component: queue full")
	// ErrOutageTooLong: the XMPP server has been away longer than the queue may cover.
	ErrOutageTooLong = errors.New("component: XMPP server unreachable for too long")
	// ErrClosed: the gateway is shutting down.
	ErrClosed = errors.New("component: gateway closed")
	// ErrConfig: an invalid configuration value.
	ErrConfig = errors.New("component: invalid configuration")
)
