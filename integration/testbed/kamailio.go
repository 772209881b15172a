//go:build unix

package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// KamailioConfig describes the Kamailio server StartKamailio runs. One
// configuration can combine the presence server, SIP forwarding to stox and
// the MSRP relay; the zero value is a SIP server that only answers OPTIONS.
type KamailioConfig struct {
	// PresenceDomain, if set, makes Kamailio a presence server (modules
	// presence and presence_xml, force_active=1 so that every subscription
	// is active at once, a db_text store in Dir/db) for that SIP domain,
	// e.g. "example.net": PUBLISH (Event: presence, application/pidf+xml)
	// and SUBSCRIBE to user@PresenceDomain are handled by Kamailio, from
	// any watcher, without authentication; NOTIFYs go to the watcher's
	// Contact, which must be an IP address (Kamailio resolves names
	// through DNS).
	PresenceDomain string
	// Forward maps SIP domains that Kamailio does not serve (the XMPP
	// domain stox serves, e.g. "example.test") to their next hop: a SIP
	// URI ("sip:127.0.0.1:5070", ";transport=tcp" for TCP) or a host:port
	// (UDP). Initial requests for such a domain, whatever the method, are
	// record-routed and relayed there statefully, so that in-dialog
	// requests both ways (NOTIFYs from stox to a SIP watcher, refreshes to
	// stox, BYE) pass through Kamailio too.
	Forward map[string]string
	// MSRP starts an RFC 4976 MSRP relay (module msrp) on its own TCP
	// port, MSRPAddr. See the MSRPPeer type for what a client sends.
	MSRP bool
	// MSRPPassword, if set, makes the relay require HTTP digest
	// authentication of AUTH requests (RFC 4976 section 5.1: realm
	// MSRPRealm, any user name, this password, qop=auth). Empty: every
	// AUTH is accepted at once.
	MSRPPassword string
	// LogLevel is the lowest level Kamailio writes to Dir/kamailio.log:
	// "debug", "info" (default: one line per request routed and per MSRP
	// frame), "notice", "warn" or "error".
	LogLevel string
	// MaxExpires caps the Expires of PUBLISH and SUBSCRIBE (presence
	// max_expires); default 3600 s.
	MaxExpires int
	// CleanPeriod is how often, in seconds, the presence server removes
	// expired publications and subscriptions and notifies the watchers
	// (presence clean_period); default 2 s, so that expiry tests are fast.
	CleanPeriod int
	// SharedMemoryMB is Kamailio's shared memory pool (-m); default 512.
	SharedMemoryMB int
}

// MSRPRealm is the digest realm of the MSRP relay's AUTH challenge.
const MSRPRealm = "stox-test"

// Kamailio is a Kamailio 5.6 SIP server (and MSRP relay) run by the tests
// on loopback ports, with its configuration, db_text store and log in a
// temporary directory.
//
// # SIP routing (integration/testdata/kamailio/kamailio.cfg.tmpl)
//
//  1. OPTIONS to Kamailio's own address without a user part: 200 (the
//     readiness probe).
//  2. In-dialog requests (To tag): loose_route() along the Route set,
//     relayed statefully (NOTIFYs from stox to SIP watchers, refreshes and
//     unsubscribes to stox, BYE); an in-dialog SUBSCRIBE without a Route
//     for it goes to the presence server (refresh or unsubscribe of a
//     subscription it holds); anything else in-dialog: 404.
//  3. Initial requests lose preloaded Route headers; those for a
//     KamailioConfig.Forward domain (any method) are record-routed (one
//     Record-Route, ;lr;ftag=..., two if the transport changes) and relayed
//     statefully to its next hop ($du, no DNS).
//  4. The presence domain (and Kamailio's own address): PUBLISH and
//     SUBSCRIBE to the presence modules, which answer (200 to SUBSCRIBE,
//     never 202) and NOTIFY the watcher's Contact directly; OPTIONS 200;
//     other methods 405.
//  5. Anything else: 404.
//
// The presence modules in tests: force_active=1 (every watcher is
// authorized at once, no authentication), PIDF from all publications of a
// presentity merged into one document (two publications without
// SIP-If-Match give two tuples; appended tuples repeat the PIDF xmlns), an unsubscribe answered by a NOTIFY with
// "Subscription-State: terminated;reason=timeout", an unknown SIP-If-Match
// answered 500 (not RFC 3903's 412).
//
// # MSRP relay
//
// See MSRPPeer for what an endpoint sends. The relay answers SENDs hop by
// hop itself and drops the endpoint's answers; it relays frames of at most
// 14336 bytes (whole frame) and answers larger ones 413 here (the msrp
// module of Kamailio 5.6 cannot relay them; with its default 16 KB TCP read
// buffer it would close the connection instead): chunk below that.
type Kamailio struct {
	SIPPort int    // UDP and TCP on 127.0.0.1
	SIPAddr string // 127.0.0.1:SIPPort
	// MSRPAddr is the host:port of the MSRP relay ("" without MSRP), and
	// MSRPURI the relay's URI (msrp://127.0.0.1:PORT;tcp), the To-Path of
	// an AUTH.
	MSRPAddr, MSRPURI string
	// PresenceDomain is KamailioConfig.PresenceDomain.
	PresenceDomain string
	// Dir holds kamailio.cfg, db/ (the db_text tables), run/ (-Y: pid
	// file and control socket) and kamailio.log.
	Dir string

	cfg     KamailioConfig
	cfgPath string

	mu        sync.Mutex
	p         *proc
	closed    bool
	finalLogs string
}

// kamailioLogLevels maps LogLevel to Kamailio's debug= values.
var kamailioLogLevels = map[string]int{"debug": 3, "info": 2, "notice": 1, "warn": 0, "error": -1}

// StartKamailio writes a configuration for cfg (rendered from
// integration/testdata/kamailio/kamailio.cfg.tmpl, which documents every
// route), creates the db_text tables, starts `kamailio -f CFG -DD -E -Y RUN
// -m MB` in the foreground and returns once it answers an OPTIONS over UDP
// and its TCP listeners accept. If Kamailio exits meanwhile, the error
// carries the tail of its log. Call Close when done.
//
// Quirks handled here (see /work/shared/TESTBED.md): Kamailio resolves SIP
// domains through DNS, so nothing in the configuration does (dns=no,
// rev_dns=no, explicit $du next hops); children=2 suits the 2-core
// machines; db_text keeps its tables in memory and writes them to disk
// only when Kamailio shuts down, so Stop sends SIGTERM to the main process
// alone and waits for it (Restart then finds the presentities and
// subscriptions again).
func StartKamailio(ctx context.Context, cfg KamailioConfig) (_ *Kamailio, err error) {
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	if _, ok := kamailioLogLevels[cfg.LogLevel]; !ok {
		return nil, fmt.Errorf("testbed: KamailioConfig.LogLevel %q: want debug, info, notice, warn or error", cfg.LogLevel)
	}
	if cfg.MaxExpires <= 0 {
		cfg.MaxExpires = 3600
	}
	if cfg.CleanPeriod <= 0 {
		cfg.CleanPeriod = 2
	}
	if cfg.SharedMemoryMB <= 0 {
		cfg.SharedMemoryMB = 512
	}
	if cfg.PresenceDomain != "" && !validCfgToken(cfg.PresenceDomain) {
		return nil, fmt.Errorf("testbed: KamailioConfig.PresenceDomain %q is not a domain name", cfg.PresenceDomain)
	}
	if cfg.MSRPPassword != "" && !validCfgString(cfg.MSRPPassword) {
		return nil, errors.New("testbed: KamailioConfig.MSRPPassword cannot hold quotes, backslashes, '$' or control characters")
	}
	var forward []kamailioForward
	for _, d := range slices.Sorted(maps.Keys(cfg.Forward)) {
		hop, err := sipNextHop(cfg.Forward[d])
		if err != nil {
			return nil, fmt.Errorf("testbed: KamailioConfig.Forward[%q]: %w", d, err)
		}
		if !validCfgToken(d) {
			return nil, fmt.Errorf("testbed: KamailioConfig.Forward: %q is not a domain name", d)
		}
		forward = append(forward, kamailioForward{Domain: strings.ToLower(d), NextHop: hop})
	}

	sip, err := ReservePort(TCPUDP)
	if err != nil {
		return nil, err
	}
	var msrp int
	if cfg.MSRP {
		if msrp, err = ReservePort(TCP); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "stox-kamailio-*")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	k := &Kamailio{
		SIPPort:        sip,
		SIPAddr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(sip)),
		PresenceDomain: cfg.PresenceDomain,
		Dir:            dir,
		cfg:            cfg,
		cfgPath:        filepath.Join(dir, "kamailio.cfg"),
	}
	if cfg.MSRP {
		k.MSRPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(msrp))
		k.MSRPURI = "msrp://" + k.MSRPAddr + ";tcp"
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, k.Logs())
			_ = k.Close()
		}
	}()
	for _, sub := range []string{"db", "run"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
	}
	if cfg.PresenceDomain != "" {
		if err := writeDBTextTables(filepath.Join(dir, "db")); err != nil {
			return nil, err
		}
	}
	text, err := renderKamailioConfig(kamailioTemplateData{
		Debug:          kamailioLogLevels[cfg.LogLevel],
		Children:       2,
		SIPPort:        sip,
		MSRP:           cfg.MSRP,
		MSRPPort:       msrp,
		MSRPPassword:   cfg.MSRPPassword,
		MSRPRealm:      MSRPRealm,
		Presence:       cfg.PresenceDomain != "",
		PresenceDomain: strings.ToLower(cfg.PresenceDomain),
		DBDir:          filepath.Join(dir, "db"),
		MaxExpires:     cfg.MaxExpires,
		CleanPeriod:    cfg.CleanPeriod,
		TCPReadBuffer:  1 << 20,
		Forward:        forward,
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.cfgPath, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	// Let Kamailio check the configuration first: its complaints are
	// clearer than those of a server that dies while starting.
	if out, err := exec.CommandContext(ctx, "kamailio", "-c", "-f", k.cfgPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testbed: kamailio -c -f %s: %w\n%s", k.cfgPath, err, tailBytes(out, 8<<10))
	}
	if err := k.start(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// SIPURI is the SIP URI of Kamailio itself over transport "udp" or "tcp"
// (e.g. sip:127.0.0.1:5060;transport=tcp), for a Route or an outbound
// proxy.
func (k *Kamailio) SIPURI(transport string) string {
	u := "sip:" + k.SIPAddr
	if strings.EqualFold(transport, "tcp") {
		u += ";transport=tcp"
	}
	return u
}

// start runs the server and waits until it works.
func (k *Kamailio) start(ctx context.Context) error {
	args := []string{"-f", k.cfgPath, "-DD", "-E", "-Y", filepath.Join(k.Dir, "run"),
		"-m", strconv.Itoa(k.cfg.SharedMemoryMB)}
	p, err := startProc("kamailio", "kamailio", args, k.Dir, filepath.Join(k.Dir, "kamailio.log"), os.Environ(), nil)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.p = p
	k.mu.Unlock()
	if err := k.waitReady(ctx, p); err != nil {
		k.stopProc(p)
		return err
	}
	return nil
}

// waitReady polls until an OPTIONS over UDP gets its 200 and the TCP
// listeners (SIP, MSRP) are up.
func (k *Kamailio) waitReady(ctx context.Context, p *proc) error {
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("testbed: kamailio exited during start-up: %v", p.result())
		}
		last = k.probeOnce(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbed: kamailio not ready: %w (last attempt: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (k *Kamailio) probeOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	m, err := SendRawSIP(ctx, "udp", k.SIPAddr, []byte(kamailioOptions(k.SIPAddr)))
	if err != nil {
		return err
	}
	if m.StatusCode() != 200 {
		return fmt.Errorf("OPTIONS answered %q", m.StartLine)
	}
	ports := []int{k.SIPPort}
	if k.MSRPAddr != "" {
		_, p, _ := net.SplitHostPort(k.MSRPAddr)
		n, _ := strconv.Atoi(p)
		ports = append(ports, n)
	}
	for _, port := range ports {
		if bound, known := portBound(port, true); known && !bound {
			return fmt.Errorf("nothing listens on tcp port %d yet", port)
		}
	}
	return nil
}

// kamailioOptions is the readiness probe, for SendRawSIP.
func kamailioOptions(addr string) string {
	id := randomHex(8)
	return "OPTIONS sip:" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/{transport} {local};branch=z9hG4bK" + id + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:probe@testbed.invalid>;tag=" + id + "\r\n" +
		"To: <sip:" + addr + ">\r\n" +
		"Call-ID: probe-" + id + "\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Content-Length: 0\r\n\r\n"
}

// stopProc stops one Kamailio process: SIGTERM to the main process only
// (it stops its children and runs the modules' shutdown, where db_text
// writes its tables), SIGKILL to the whole group after 10 s.
func (k *Kamailio) stopProc(p *proc) {
	if p.exited() {
		p.kill() // reaps children left in the group, if any
		return
	}
	_ = syscall.Kill(p.pid(), sigTerm)
	select {
	case <-p.done:
		p.kill()
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and keeps its
// configuration, data and ports: Restart brings it back. It is a no-op if
// it is not running.
func (k *Kamailio) Stop() error {
	k.mu.Lock()
	p := k.p
	k.mu.Unlock()
	if p == nil {
		return nil
	}
	wasRunning := !p.exited()
	k.stopProc(p)
	p.mu.Lock()
	killed := p.killed
	p.mu.Unlock()
	if wasRunning && killed {
		return fmt.Errorf("testbed: kamailio (pid %d) ignored SIGTERM and was killed", p.pid())
	}
	return nil
}

// Kill ends the server with SIGKILL, as a crash would (db_text writes
// nothing: changes since the last start are lost). Restart brings it back.
func (k *Kamailio) Kill() {
	k.mu.Lock()
	p := k.p
	k.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Restart stops the server if it runs and starts it again on the same
// ports with the same configuration and data, returning once it answers
// again.
func (k *Kamailio) Restart(ctx context.Context) error {
	k.mu.Lock()
	closed := k.closed
	k.mu.Unlock()
	if closed {
		return errors.New("testbed: restart of a closed Kamailio")
	}
	if err := k.Stop(); err != nil {
		return err
	}
	if err := k.start(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, k.Logs())
	}
	return nil
}

// PID is the process id of the running server's main process, 0 if it is
// stopped.
func (k *Kamailio) PID() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p == nil || k.p.exited() {
		return 0
	}
	return k.p.pid()
}

// RPC runs a Kamailio RPC command through kamcmd and the control socket
// (e.g. RPC(ctx, "presence.presentity_list"), "msrp.cmaplist",
// "db_text.dump"), returning its output.
func (k *Kamailio) RPC(ctx context.Context, cmd string, args ...string) (string, error) {
	sock := "unix:" + filepath.Join(k.Dir, "run", "kamailio_ctl")
	c := exec.CommandContext(ctx, "kamcmd", append([]string{"-s", sock, cmd}, args...)...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testbed: kamcmd %s: %w\n%s", cmd, err, out)
	}
	return string(out), nil
}

// Close stops the server and removes Dir (kept when STOX_TESTBED_KEEP=1).
// Logs still work afterwards.
func (k *Kamailio) Close() error {
	err := k.Stop()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.finalLogs = k.logsLocked()
	k.closed = true
	if keepDirs() {
		k.finalLogs += "(kept " + k.Dir + ")\n"
		return err
	}
	if rmErr := os.RemoveAll(k.Dir); rmErr != nil && err == nil {
		err = fmt.Errorf("testbed: %w", rmErr)
	}
	return err
}

// Logs returns the tail of Kamailio's log (its stderr), for failure
// messages.
func (k *Kamailio) Logs() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return k.finalLogs
	}
	return k.logsLocked()
}

func (k *Kamailio) logsLocked() string {
	return section("kamailio.log ("+k.Dir+")", tailFile(filepath.Join(k.Dir, "kamailio.log"), 32<<10))
}

// kamailioForward is one forward domain of the configuration.
type kamailioForward struct {
	Domain  string
	NextHop string // sip:IP:PORT[;transport=tcp]
}

// kamailioTemplateData is what kamailio.cfg.tmpl is rendered with.
type kamailioTemplateData struct {
	Debug, Children         int
	SIPPort, MSRPPort       int
	MSRP                    bool
	MSRPPassword, MSRPRealm string
	Presence                bool
	PresenceDomain, DBDir   string
	MaxExpires, CleanPeriod int
	TCPReadBuffer           int
	Forward                 []kamailioForward
}

// KamailioTemplate returns the path of the configuration template,
// integration/testdata/kamailio/kamailio.cfg.tmpl.
func KamailioTemplate() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "kamailio", "kamailio.cfg.tmpl")
}

func renderKamailioConfig(data kamailioTemplateData) (string, error) {
	src, err := os.ReadFile(KamailioTemplate())
	if err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	t, err := template.New("kamailio.cfg").Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("testbed: %s: %w", KamailioTemplate(), err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("testbed: %s: %w", KamailioTemplate(), err)
	}
	return b.String(), nil
}

// sipNextHop turns a Forward value into a SIP URI for $du, refusing names
// (Kamailio would resolve them through DNS).
func sipNextHop(v string) (string, error) {
	if !validCfgString(v) {
		return "", fmt.Errorf("%q cannot go into the configuration", v)
	}
	hostport := v
	if strings.HasPrefix(strings.ToLower(v), "sip:") {
		hostport = v[4:]
		if i := strings.IndexByte(hostport, ';'); i >= 0 {
			hostport = hostport[:i]
		}
	} else {
		v = "sip:" + v
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("next hop %q: want sip:IP:PORT[;transport=tcp] or IP:PORT: %w", v, err)
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("next hop %q: %q is not an IP address (Kamailio would ask DNS)", v, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("next hop %q: bad port", v)
	}
	return v, nil
}

// validCfgToken accepts domain names (letters, digits, '.', '-').
func validCfgToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validCfgString accepts what can sit inside a double-quoted string of the
// Kamailio configuration without escaping or pseudo-variable expansion.
func validCfgString(s string) bool {
	return s != "" && !strings.ContainsAny(s, "\"\\$") && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func tailBytes(b []byte, max int) string {
	if len(b) > max {
		return "[...]\n" + string(b[len(b)-max:])
	}
	return string(b)
}

// dbTextTables are the db_text tables the presence modules use, with the
// column definitions and versions of Kamailio 5.6
// (/usr/share/kamailio/dbtext/kamailio in the Debian package).
var dbTextTables = []struct {
	name, header string
	version      int
}{
	{"presentity", "id(int,auto) username(string) domain(string) event(string) etag(string) expires(int) received_time(int) body(string) sender(string) priority(int) ruid(string,null)", 5},
	{"active_watchers", "id(int,auto) presentity_uri(string) watcher_username(string) watcher_domain(string) to_user(string) to_domain(string) event(string) event_id(string,null) to_tag(string) from_tag(string) callid(string) local_cseq(int) remote_cseq(int) contact(string) record_route(string,null) expires(int) status(int) reason(string,null) version(int) socket_info(string) local_contact(string) from_user(string) from_domain(string) updated(int) updated_winfo(int) flags(int,null) user_agent(string,null)", 12},
	{"watchers", "id(int,auto) presentity_uri(string) watcher_username(string) watcher_domain(string) event(string) status(int) reason(string,null) inserted_time(int)", 3},
	{"xcap", "id(int,auto) username(string) domain(string) doc(string) doc_type(int) etag(string) source(int) doc_uri(string) port(int)", 4},
}

// writeDBTextTables creates an empty db_text database in dir.
func writeDBTextTables(dir string) error {
	var version strings.Builder
	version.WriteString("id(int,auto) table_name(string) table_version(int)\n")
	version.WriteString("0:version:1\n")
	for _, t := range dbTextTables {
		if err := os.WriteFile(filepath.Join(dir, t.name), []byte(t.header+"\n"), 0o644); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
		fmt.Fprintf(&version, "0:%s:%d\n", t.name, t.version)
	}
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte(version.String()), 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return nil
}

// kamailioModulePackage names the Debian package of the Kamailio modules
// that are not in the kamailio package itself.
var kamailioModulePackage = map[string]string{
	"presence":     "kamailio-presence-modules",
	"presence_xml": "kamailio-presence-modules",
}

// NeedKamailioModules is Need for Kamailio modules (e.g. "presence",
// "presence_xml", "msrp"): it checks the kamailio program and the modules'
// files in Kamailio's module directory (kamailio -I), and fails the test
// if one is missing and STOX_REQUIRE_PEERS=1, or skips it loudly.
func NeedKamailioModules(t testing.TB, modules ...string) {
	t.Helper()
	Need(t, "kamailio")
	out, err := exec.Command("kamailio", "-I").CombinedOutput()
	dir := ""
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Default paths to modules:"); ok {
			dir = strings.TrimSpace(v)
		}
	}
	for _, m := range modules {
		if dir != "" {
			if _, err := os.Stat(filepath.Join(dir, m+".so")); err == nil {
				continue
			}
		}
		pkg := kamailioModulePackage[m]
		if pkg == "" {
			pkg = "kamailio"
		}
		why := fmt.Sprintf("the Kamailio module %q is not installed in %q (kamailio -I: %v)", m, dir, err)
		if os.Getenv("STOX_REQUIRE_PEERS") == "1" {
			t.Fatalf("testbed: %s: apt-get install %s; STOX_REQUIRE_PEERS=1", why, pkg)
			return
		}
		t.Skipf("!!! SKIPPED: this integration test needs %s: apt-get install %s "+
			"(or run `make test`, which installs it and sets STOX_REQUIRE_PEERS=1) !!!", why, pkg)
		return
	}
}
