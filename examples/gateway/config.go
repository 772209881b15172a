package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the TOML configuration file (DESIGN.md "Configuration contract";
// the key names are a public interface). Every key is documented in the
// README's configuration reference.
type Config struct {
	XMPP     XMPPConfig     `toml:"xmpp"`
	SIP      SIPConfig      `toml:"sip"`
	MSRP     MSRPConfig     `toml:"msrp"`
	Chat     ChatConfig     `toml:"chat"`
	Store    StoreConfig    `toml:"store"`
	Presence PresenceConfig `toml:"presence"`
	Admin    AdminConfig    `toml:"admin"`
	Log      LogConfig      `toml:"log"`
	Metrics  MetricsConfig  `toml:"metrics"`
}

type MetricsConfig struct {
	Listen string `toml:"listen"` // host:port of the HTTP metrics endpoint; "" = off
	Pprof  bool   `toml:"pprof"`  // also serve /debug/pprof/ there
}

type XMPPConfig struct {
	Component     string   `toml:"component"`
	Server        string   `toml:"server"`
	Secret        string   `toml:"secret"`
	Domains       []string `toml:"domains"`
	PingInterval  Duration `toml:"ping_interval"`
	PingTimeout   Duration `toml:"ping_timeout"`
	ReconnectMax  Duration `toml:"reconnect_max"`
	MaxStanzaSize int      `toml:"max_stanza_size"`
	MaxSegment    int      `toml:"max_segment"` // TCP segment cap of the component stream; 0: 8192, -1: the system's
	QueueLimit    int      `toml:"queue_limit"`
	QueueMaxAge   Duration `toml:"queue_max_outage"`
}

type SIPConfig struct {
	Domain             string   `toml:"domain"`
	Listen             []string `toml:"listen"`
	OutboundProxy      string   `toml:"outbound_proxy"`
	Trusted            []string `toml:"trusted"`
	ForeignDomains     *bool    `toml:"foreign_domains"`
	LargeMessages      string   `toml:"large_messages"`
	TLSCert            string   `toml:"tls_cert"`
	TLSKey             string   `toml:"tls_key"`
	TransactionTimeout Duration `toml:"transaction_timeout"`
	MaxInFlight        int      `toml:"max_in_flight"`
	MaxMessageBody     int      `toml:"max_message_body"`
	UserQueue          int      `toml:"user_queue"`
	MaxIncoming        int      `toml:"max_incoming"`
	FastPath           *bool    `toml:"fast_path"` // default true
}

type MSRPConfig struct {
	Listen  string `toml:"listen"`   // tcp:HOST:PORT or tls:HOST:PORT
	Host    string `toml:"host"`     // address in SDP and MSRP URIs; default the listen host
	TLSCert string `toml:"tls_cert"` // for a tls: listener
	TLSKey  string `toml:"tls_key"`
}

type ChatConfig struct {
	Mode        string   `toml:"mode"`
	IdleTimeout Duration `toml:"idle_timeout"` // CHAT-61; default 10m
	Queue       int      `toml:"queue"`        // messages waiting per session; default 100
	MaxSessions int      `toml:"max_sessions"` // default 10000
}

type StoreConfig struct {
	Path string `toml:"path"`
}

// PresenceConfig is the [presence] section (RFC 8048 presence both ways).
type PresenceConfig struct {
	Enabled          *bool    `toml:"enabled"`           // default true
	NotifyInterval   Duration `toml:"notify_interval"`   // PRES-28; default 5s
	SubscribeExpires int      `toml:"subscribe_expires"` // our SUBSCRIBEs; default 3600
	MinExpires       int      `toml:"min_expires"`       // SIP watchers: 423 below it; default 60
	MaxExpires       int      `toml:"max_expires"`       // SIP watchers: granted at most; default 3600
	RetryMin         Duration `toml:"retry_min"`         // backoff bounds; defaults 5s, 10m
	RetryMax         Duration `toml:"retry_max"`
	MaxSubscriptions int      `toml:"max_subscriptions"` // per direction; default 200000
	RestoreRate      int      `toml:"restore_rate"`      // refreshes/probes per second after a start; default 100
}

func (p *PresenceConfig) enabled() bool { return p.Enabled == nil || *p.Enabled }

type AdminConfig struct {
	JIDs []string `toml:"jids"`
}

type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Duration is a TOML string like "30s" or "5m".
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (like \"30s\"): %q", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.Duration = v
	return nil
}

// configError names the key and the problem.
type configError struct {
	Key, Problem string
}

func (e *configError) Error() string { return e.Key + ": " + e.Problem }

func keyErr(key, format string, args ...any) error {
	return &configError{Key: key, Problem: fmt.Sprintf(format, args...)}
}

// loadConfig reads, decodes and validates a configuration file. Unknown keys
// are errors, so a misspelt key never silently falls back to a default.
func loadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseConfig(string(raw))
}

func parseConfig(text string) (*Config, error) {
	var c Config
	md, err := toml.Decode(text, &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			if pe.LastKey != "" {
				return nil, keyErr(pe.LastKey, "line %d: %v", pe.Position.Line, pe)
			}
			return nil, fmt.Errorf("line %d: %v", pe.Position.Line, pe)
		}
		// Type errors name the key: "toml: line 3 (last key "sip.listen"): ..."
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, keyErr(und[0].String(), "unknown key")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	x := &c.XMPP
	if x.Component == "" {
		return keyErr("xmpp.component", "required (the component's JID, as registered in the XMPP server)")
	}
	if err := checkDomain(x.Component); err != nil {
		return keyErr("xmpp.component", "%v", err)
	}
	if x.Server == "" {
		return keyErr("xmpp.server", "required (host:port of the XMPP server's component port)")
	}
	if _, _, err := net.SplitHostPort(x.Server); err != nil {
		return keyErr("xmpp.server", "want host:port: %v", err)
	}
	if x.Secret == "" {
		return keyErr("xmpp.secret", "required")
	}
	if len(x.Domains) == 0 {
		return keyErr("xmpp.domains", "required: at least one XMPP domain whose users SIP users may reach")
	}
	for i, d := range x.Domains {
		if err := checkDomain(d); err != nil {
			return keyErr(fmt.Sprintf("xmpp.domains[%d]", i), "%v", err)
		}
		if strings.EqualFold(d, x.Component) {
			return keyErr(fmt.Sprintf("xmpp.domains[%d]", i), "must differ from xmpp.component")
		}
	}
	if x.MaxStanzaSize != 0 && x.MaxStanzaSize < 10000 {
		return keyErr("xmpp.max_stanza_size", "must be at least 10000 (RFC 6120 s13.12)")
	}
	if m := x.MaxSegment; m < -1 || m > 0 && (m < 536 || m > 32767) {
		return keyErr("xmpp.max_segment", "must be 536..32767 bytes, or -1 for the system's segment size")
	}
	if x.QueueLimit < 0 {
		return keyErr("xmpp.queue_limit", "must not be negative")
	}

	s := &c.SIP
	if s.Domain == "" {
		s.Domain = x.Component
	}
	if err := checkDomain(s.Domain); err != nil {
		return keyErr("sip.domain", "%v", err)
	}
	if len(s.Listen) == 0 {
		return keyErr("sip.listen", "required: at least one of udp:HOST:PORT, tcp:HOST:PORT, tls:HOST:PORT")
	}
	hasTLS := false
	for i, l := range s.Listen {
		tr, _, err := splitListen(l)
		if err != nil {
			return keyErr(fmt.Sprintf("sip.listen[%d]", i), "%v", err)
		}
		hasTLS = hasTLS || tr == "tls"
	}
	if hasTLS && (s.TLSCert == "" || s.TLSKey == "") {
		return keyErr("sip.tls_cert", "a tls: listener needs sip.tls_cert and sip.tls_key")
	}
	for _, f := range []struct{ key, path string }{{"sip.tls_cert", s.TLSCert}, {"sip.tls_key", s.TLSKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				return keyErr(f.key, "%v", err)
			}
		}
	}
	if s.OutboundProxy != "" {
		if !strings.HasPrefix(s.OutboundProxy, "sip:") && !strings.HasPrefix(s.OutboundProxy, "sips:") {
			return keyErr("sip.outbound_proxy", "want a SIP URI like sip:127.0.0.1:5070;transport=udp")
		}
	}
	if _, err := c.trustedPrefixes(); err != nil {
		return err
	}
	switch s.LargeMessages {
	case "":
		s.LargeMessages = "tcp"
	case "tcp", "chunk", "reject":
	default:
		return keyErr("sip.large_messages", "want \"tcp\", \"chunk\" or \"reject\", not %q", s.LargeMessages)
	}
	if s.MaxInFlight < 0 || s.MaxMessageBody < 0 || s.UserQueue < 0 || s.MaxIncoming < 0 {
		return keyErr("sip", "limits must not be negative")
	}

	if c.MSRP.Listen != "" {
		tr, _, err := splitListen(c.MSRP.Listen)
		if err != nil || (tr != "tcp" && tr != "tls") {
			return keyErr("msrp.listen", "want tcp:HOST:PORT or tls:HOST:PORT")
		}
		if tr == "tls" && (c.MSRP.TLSCert == "" || c.MSRP.TLSKey == "") {
			return keyErr("msrp.tls_cert", "a tls: listener needs msrp.tls_cert and msrp.tls_key")
		}
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(c.MSRP.Listen, "tcp:"), "tls:"))
		if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() && c.MSRP.Host == "" {
			return keyErr("msrp.host", "required when msrp.listen binds every address: the address peers connect to (put in SDP)")
		}
	}
	if c.MSRP.Host != "" {
		if err := checkDomain(c.MSRP.Host); err != nil {
			if _, perr := netip.ParseAddr(c.MSRP.Host); perr != nil {
				return keyErr("msrp.host", "want a host name or an IP address")
			}
		}
	}
	pr := &c.Presence
	if pr.SubscribeExpires < 0 || pr.MaxSubscriptions < 0 || pr.RestoreRate < 0 {
		return keyErr("presence", "limits must not be negative")
	}
	if pr.SubscribeExpires != 0 && pr.SubscribeExpires < 60 {
		return keyErr("presence.subscribe_expires", "must be at least 60 seconds")
	}
	if pr.MinExpires == 0 {
		pr.MinExpires = 60
	}
	if pr.MaxExpires == 0 {
		pr.MaxExpires = 3600
	}
	if pr.MinExpires < 1 || pr.MaxExpires < pr.MinExpires {
		return keyErr("presence.max_expires", "want 1 <= presence.min_expires <= presence.max_expires")
	}
	if pr.RetryMax.Duration != 0 && pr.RetryMax.Duration < pr.RetryMin.Duration {
		return keyErr("presence.retry_max", "must not be below presence.retry_min")
	}
	switch c.Chat.Mode {
	case "", "message":
		c.Chat.Mode = "message"
	case "msrp", "auto":
		if c.MSRP.Listen == "" {
			return keyErr("chat.mode", "%q needs msrp.listen", c.Chat.Mode)
		}
	default:
		return keyErr("chat.mode", "want \"message\", \"msrp\" or \"auto\", not %q", c.Chat.Mode)
	}
	if c.Chat.Queue < 0 || c.Chat.MaxSessions < 0 {
		return keyErr("chat", "limits must not be negative")
	}
	for i, j := range c.Admin.JIDs {
		if !strings.Contains(j, "@") || strings.ContainsAny(j, " /") {
			return keyErr(fmt.Sprintf("admin.jids[%d]", i), "want a bare JID like admin@example.com, not %q", j)
		}
	}
	if _, err := c.logLevel(); err != nil {
		return err
	}
	if c.Metrics.Listen != "" {
		host, _, err := net.SplitHostPort(c.Metrics.Listen)
		if err != nil {
			return keyErr("metrics.listen", "want host:port: %v", err)
		}
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return keyErr("metrics.listen", "host must be an IP address, not %q", host)
		}
	} else if c.Metrics.Pprof {
		return keyErr("metrics.pprof", "needs metrics.listen")
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return keyErr("log.format", "want \"text\" or \"json\", not %q", c.Log.Format)
	}
	return nil
}

func (c *Config) foreignDomains() bool {
	return c.SIP.ForeignDomains == nil || *c.SIP.ForeignDomains
}

func (c *Config) trustedPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for i, t := range c.SIP.Trusted {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			a, err2 := netip.ParseAddr(t)
			if err2 != nil {
				return nil, keyErr(fmt.Sprintf("sip.trusted[%d]", i), "want an address or CIDR prefix like 127.0.0.1/32, not %q", t)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

func (c *Config) logLevel() (slog.Level, error) {
	switch strings.ToLower(c.Log.Level) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, keyErr("log.level", "want debug, info, warn or error, not %q", c.Log.Level)
}

// splitListen parses "udp:127.0.0.1:5060".
func splitListen(s string) (transport, hostport string, err error) {
	tr, hp, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("want TRANSPORT:HOST:PORT, not %q", s)
	}
	switch tr {
	case "udp", "tcp", "tls":
	default:
		return "", "", fmt.Errorf("unknown transport %q (want udp, tcp or tls)", tr)
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", "", fmt.Errorf("want TRANSPORT:HOST:PORT: %v", err)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
		return "", "", fmt.Errorf("listen host must be an IP address, not %q", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("bad port %q", port)
	}
	return tr, hp, nil
}

func checkDomain(d string) error {
	if d == "" || len(d) > 253 || strings.ContainsAny(d, "@/ \t:") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
		return fmt.Errorf("not a domain name: %q", d)
	}
	if d != strings.ToLower(d) {
		return fmt.Errorf("write domain names in lower case: %q", d)
	}
	return nil
}
