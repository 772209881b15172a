//go:build unix

package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProsodyConfig describes the Prosody server StartProsody runs.
type ProsodyConfig struct {
	// Domain is the VirtualHost, e.g. "example.test". Required.
	Domain string
	// Components maps each external component domain (XEP-0114) to its
	// secret, e.g. {"sip.example.test": "s3cret"}.
	Components map[string]string
	// MUC, if set, is a conference domain served by mod_muc.
	MUC string
	// Users maps user (localpart) to password; they are registered before
	// the server starts.
	Users map[string]string
	// Modules are added to modules_enabled (the base set is roster,
	// saslauth, disco and ping; Prosody itself loads presence, message, iq
	// and offline).
	Modules []string
	// LogLevel is the lowest level written to prosody.log in Dir:
	// "debug" (default), "info", "warn" or "error". Benchmarks use "warn".
	LogLevel string
}

// Prosody is a Prosody server run by the tests on loopback ports, with its
// configuration, data and logs in a temporary directory.
type Prosody struct {
	C2SAddr       string // host:port of the c2s listener (no TLS, PLAIN allowed)
	ComponentAddr string // host:port of the XEP-0114 component listener
	Domain        string // the VirtualHost
	Dir           string // config, data/, prosody.log, console.log

	cfg     ProsodyConfig
	cfgPath string
	as      *syscall.Credential // run as the prosody user when we are root
	probe   string              // password of the readiness-probe user

	mu        sync.Mutex
	p         *proc
	closed    bool
	finalLogs string
}

// probeUser is registered on every server to check that logins work.
const probeUser = "testbed-probe"

// StartProsody writes a configuration for cfg, registers the users, starts
// Prosody in the foreground and returns once both listeners accept
// connections and a c2s login succeeds. Call Close when done.
//
// Quirks handled here (see /work/shared/TESTBED.md): mod_posix is disabled,
// because as root it refuses to run and leaves a half-started server; as
// root the server and prosodyctl run as the "prosody" user, which owns Dir;
// no mod_limits, no s2s, no TLS, no HTTP.
func StartProsody(ctx context.Context, cfg ProsodyConfig) (_ *Prosody, err error) {
	if cfg.Domain == "" {
		return nil, errors.New("testbed: ProsodyConfig.Domain is required")
	}
	switch cfg.LogLevel {
	case "":
		cfg.LogLevel = "debug"
	case "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("testbed: ProsodyConfig.LogLevel %q: want debug, info, warn or error", cfg.LogLevel)
	}
	c2s, err := ReservePort(TCP)
	if err != nil {
		return nil, err
	}
	comp, err := ReservePort(TCP)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stox-prosody-*")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	p := &Prosody{
		C2SAddr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(c2s)),
		ComponentAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(comp)),
		Domain:        cfg.Domain,
		Dir:           dir,
		cfg:           cfg,
		cfgPath:       filepath.Join(dir, "prosody.cfg.lua"),
		probe:         randomHex(12),
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, p.Logs())
			_ = p.Close()
		}
	}()
	for _, sub := range []string{"data", "certs"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := os.WriteFile(p.cfgPath, []byte(p.config(c2s, comp)), 0o644); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if os.Geteuid() == 0 {
		if p.as, err = prosodyUser(); err != nil {
			return nil, err
		}
		if p.as != nil {
			if err := chownTree(dir, int(p.as.Uid), int(p.as.Gid)); err != nil {
				return nil, err
			}
		}
	}
	users := map[string]string{probeUser: p.probe}
	for u, pw := range cfg.Users {
		users[u] = pw
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		if err := p.register(ctx, u, users[u]); err != nil {
			return nil, err
		}
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// config renders prosody.cfg.lua.
func (p *Prosody) config(c2s, comp int) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("-- Written by stox integration/testbed for one test run.")
	w("interfaces = { %s }", luaQuote("127.0.0.1"))
	w("component_interfaces = { %s }", luaQuote("127.0.0.1"))
	w("c2s_ports = { %d }", c2s)
	w("component_ports = { %d }", comp)
	w("s2s_ports = {}")
	w("c2s_direct_tls_ports = {}")
	w("s2s_direct_tls_ports = {}")
	w("legacy_ssl_ports = {}")
	w("http_ports = {}")
	w("https_ports = {}")
	w("c2s_require_encryption = false")
	w("s2s_require_encryption = false")
	w("allow_unencrypted_plain_auth = true")
	w("authentication = %s", luaQuote("internal_plain"))
	w("storage = %s", luaQuote("internal"))
	w("data_path = %s", luaQuote(filepath.Join(p.Dir, "data")))
	w("certificates = %s", luaQuote(filepath.Join(p.Dir, "certs")))
	if os.Geteuid() != 0 {
		if u, err := user.Current(); err == nil {
			w("prosody_user = %s", luaQuote(u.Username))
			if g, err := user.LookupGroupId(u.Gid); err == nil {
				w("prosody_group = %s", luaQuote(g.Name))
			}
		}
	}
	mods := []string{"roster", "saslauth", "disco", "ping"}
	for _, m := range p.cfg.Modules {
		if !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	w("modules_enabled = { %s }", luaList(mods))
	// posix: see StartProsody. s2s: loopback tests have no peers.
	w("modules_disabled = { %s }", luaList([]string{"posix", "s2s", "s2s_auth_certs", "limits", "tls"}))
	w("log = { %s = %s }", p.cfg.LogLevel, luaQuote(filepath.Join(p.Dir, "prosody.log")))
	w("")
	w("VirtualHost %s", luaQuote(p.cfg.Domain))
	for _, d := range slices.Sorted(maps.Keys(p.cfg.Components)) {
		w("")
		w("Component %s", luaQuote(d))
		w("\tcomponent_secret = %s", luaQuote(p.cfg.Components[d]))
	}
	if p.cfg.MUC != "" {
		w("")
		w("Component %s %s", luaQuote(p.cfg.MUC), luaQuote("muc"))
	}
	return b.String()
}

// start runs the server and waits until it works.
func (p *Prosody) start(ctx context.Context) error {
	proc, err := startProc("prosody", "prosody", []string{"--config", p.cfgPath}, p.Dir,
		filepath.Join(p.Dir, "console.log"), os.Environ(), p.as)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.p = proc
	p.mu.Unlock()
	return p.waitReady(ctx, proc)
}

// waitReady polls until both listeners accept and the probe user logs in.
func (p *Prosody) waitReady(ctx context.Context, proc *proc) error {
	var last error
	for {
		if proc.exited() {
			return fmt.Errorf("testbed: prosody exited during start-up: %v", proc.result())
		}
		last = p.probeOnce(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbed: prosody not ready: %w (last attempt: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Prosody) probeOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.ComponentAddr)
	if err != nil {
		return err
	}
	_ = conn.Close()
	c, err := Dial(ctx, p.C2SAddr, probeUser+"@"+p.Domain, p.probe, "probe")
	if err != nil {
		return err
	}
	return c.Close()
}

// Register creates (or resets) an account with prosodyctl; it works whether
// the server runs or not.
func (p *Prosody) Register(user, pass string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.register(ctx, user, pass)
}

func (p *Prosody) register(ctx context.Context, user, pass string) error {
	// As root, prosodyctl switches to the prosody user by itself.
	cmd := exec.CommandContext(ctx, "prosodyctl", "--config", p.cfgPath, "register", user, p.cfg.Domain, pass)
	cmd.Dir = p.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("testbed: prosodyctl register %s@%s: %w\n%s", user, p.cfg.Domain, err, out)
	}
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and keeps its
// data and ports: Restart brings it back. It is a no-op if it is not running.
func (p *Prosody) Stop() error {
	p.mu.Lock()
	proc := p.p
	p.mu.Unlock()
	if proc == nil {
		return nil
	}
	// Without mod_posix Prosody has no SIGTERM handler: the signal ends it.
	proc.stop(sigTerm, 5*time.Second)
	p.mu.Lock()
	killed := proc.killed
	p.mu.Unlock()
	if killed {
		return fmt.Errorf("testbed: prosody (pid %d) ignored SIGTERM and was killed", proc.pid())
	}
	return nil
}

// Restart stops the server if it runs and starts it again on the same ports
// with the same data, returning once it works again.
func (p *Prosody) Restart(ctx context.Context) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return errors.New("testbed: restart of a closed Prosody")
	}
	if err := p.Stop(); err != nil {
		return err
	}
	if err := p.start(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, p.Logs())
	}
	return nil
}

// PID is the process id of the running server, 0 if it is stopped.
func (p *Prosody) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil || p.p.exited() {
		return 0
	}
	return p.p.pid()
}

// Close stops the server and removes Dir (kept when STOX_TESTBED_KEEP=1).
// Logs still work afterwards.
func (p *Prosody) Close() error {
	err := p.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.finalLogs = p.logsLocked()
	p.closed = true
	if keepDirs() {
		p.finalLogs += "(kept " + p.Dir + ")\n"
		return err
	}
	if rmErr := os.RemoveAll(p.Dir); rmErr != nil && err == nil {
		err = fmt.Errorf("testbed: %w", rmErr)
	}
	return err
}

// Logs returns the tail of Prosody's output and log file, for failure
// messages.
func (p *Prosody) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.finalLogs
	}
	return p.logsLocked()
}

func (p *Prosody) logsLocked() string {
	return section("prosody console ("+p.Dir+")", tailFile(filepath.Join(p.Dir, "console.log"), 8<<10)) +
		section("prosody.log", tailFile(filepath.Join(p.Dir, "prosody.log"), 32<<10))
}

// prosodyUser returns the credentials of the prosody user, nil if there is
// no such user (then everything runs as root, which works with mod_posix
// disabled).
func prosodyUser() (*syscall.Credential, error) {
	u, err := user.Lookup("prosody")
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, nil
		}
		return nil, fmt.Errorf("testbed: looking up the prosody user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("testbed: prosody user has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}, nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
		return nil
	})
}

// luaQuote renders s as a Lua string literal.
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func luaList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = luaQuote(s)
	}
	return strings.Join(q, "; ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
