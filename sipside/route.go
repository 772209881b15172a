package sipside

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// target is where one request goes: a sipgo transport name and a host:port
// (an IP, or a name that sipgo resolves with A/AAAA, preferring IPv4).
type target struct {
	transport string // "UDP", "TCP", "TLS"
	dest      string
}

// transportOf returns the transport= parameter of u in sipgo's spelling, or
// "" when there is none.
func transportOf(u *sip.Uri) (string, error) {
	for _, kv := range u.UriParams {
		if !strings.EqualFold(kv.K, "transport") {
			continue
		}
		switch strings.ToLower(kv.V) {
		case "udp":
			return "UDP", nil
		case "tcp":
			return "TCP", nil
		case "tls":
			return "TLS", nil
		}
		return "", fmt.Errorf("%w: transport %q not supported", ErrTransport, kv.V)
	}
	return "", nil
}

// resolveTarget chooses the transport and the address of the next hop for a
// request to ruri (RFC 3263 §4 without NAPTR):
//   - the next hop is the outbound proxy when there is one, else the
//     Request-URI;
//   - the transport is its transport= parameter; a sips: URI means TLS;
//     otherwise UDP (which the size rule may turn into TCP, D1);
//   - an IP literal, or a name with an explicit port, is used as it is
//     (default port 5060, or 5061 for TLS);
//   - a name without a port is looked up with SRV (_sips._tcp for TLS,
//     else _sip._udp and, when no transport was given, then _sip._tcp,
//     whose answer also decides the transport), falling back to the name
//     itself on the default port. sipgo then resolves names with A/AAAA.
//
// sipgo's own resolution is not used for SRV: it tries A/AAAA first and
// SRV only when that fails, and with its "prefer SRV" option it queries SRV
// even when the URI has a port, both against RFC 3263 §4.2.
func (u *UA) resolveTarget(ctx context.Context, ruri *sip.Uri) (target, error) {
	if u.cfg.proxy != nil {
		return u.resolveHop(ctx, u.cfg.proxy)
	}
	return u.resolveHop(ctx, ruri)
}

// resolveHop chooses the transport and address of hop itself, as
// resolveTarget does for its next hop.
func (u *UA) resolveHop(ctx context.Context, hop *sip.Uri) (target, error) {
	tp, err := transportOf(hop)
	if err != nil {
		return target{}, err
	}
	explicit := tp != ""
	if hop.Scheme == "sips" {
		switch tp {
		case "", "TCP", "TLS":
			tp = "TLS"
		default:
			return target{}, fmt.Errorf("%w: sips URI with transport=%s", ErrTransport, strings.ToLower(tp))
		}
		explicit = true
	}
	host := strings.TrimSuffix(strings.Trim(hop.Host, "[]"), ".")
	if host == "" {
		return target{}, fmt.Errorf("%w: next hop has no host", ErrTransport)
	}
	_, ipErr := netip.ParseAddr(host)
	if ipErr == nil || hop.Port > 0 {
		if tp == "" {
			tp = "UDP"
		}
		port := hop.Port
		if port == 0 {
			port = sip.DefaultPort(tp)
		}
		return target{transport: tp, dest: net.JoinHostPort(host, strconv.Itoa(port))}, nil
	}
	// The lookups wait on the network: Close must be able to end them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(u.ctx, cancel)()
	tries := []string{tp}
	if !explicit {
		tries = []string{"UDP", "TCP"}
	}
	for _, t := range tries {
		service, proto := "sip", strings.ToLower(t)
		if t == "TLS" {
			service, proto = "sips", "tcp"
		}
		if name, port, ok := u.srvc.lookup(ctx, service, proto, host); ok {
			return target{transport: t, dest: net.JoinHostPort(name, strconv.Itoa(int(port)))}, nil
		}
	}
	if tp == "" {
		tp = "UDP"
	}
	return target{transport: tp, dest: net.JoinHostPort(host, strconv.Itoa(sip.DefaultPort(tp)))}, nil
}

// srvCache remembers SRV answers (and their absence) for a while: without
// it every MESSAGE to a domain would cost a DNS query. It is bounded.
type srvCache struct {
	lookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	ttl       time.Duration
	max       int
	now       func() time.Time

	mu sync.Mutex
	m  map[string]srvEntry
}

type srvEntry struct {
	target string
	port   uint16
	ok     bool
	exp    time.Time
}

func newSRVCache(f func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)) *srvCache {
	return &srvCache{lookupSRV: f, ttl: 60 * time.Second, max: 1024, now: time.Now, m: make(map[string]srvEntry)}
}

// lookup returns the first SRV target (records come sorted by priority and
// shuffled by weight, RFC 2782).
func (c *srvCache) lookup(ctx context.Context, service, proto, name string) (string, uint16, bool) {
	key := service + "." + proto + "." + strings.ToLower(name)
	now := c.now()
	c.mu.Lock()
	e, hit := c.m[key]
	c.mu.Unlock()
	if hit && now.Before(e.exp) {
		return e.target, e.port, e.ok
	}
	_, addrs, err := c.lookupSRV(ctx, service, proto, name)
	e = srvEntry{exp: now.Add(c.ttl)}
	if err == nil && len(addrs) > 0 {
		t := strings.TrimSuffix(addrs[0].Target, ".")
		if t != "" { // "." means the service is not offered (RFC 2782)
			e.target, e.port, e.ok = t, addrs[0].Port, true
		}
	}
	if err != nil && ctx.Err() != nil {
		return "", 0, false // do not remember our own cancellation
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = e
	c.mu.Unlock()
	return e.target, e.port, e.ok
}
