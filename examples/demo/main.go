//go:build unix

// Command demo is what `make demo` runs: a Prosody server, stox, a scripted
// XMPP user (alice@example.com) and a scripted SIP user (bob@sip.example.com),
// all on loopback. It shows a message crossing each way and errors coming
// back, then presence both ways: alice watches bob come online and go
// offline, and bob (a SIP watcher) gets NOTIFYs as alice approves him and
// goes offline and online; then MSRP chat sessions (RFC 7573) both ways:
// bob INVITEs alice and they chat over MSRP until her <gone/> hangs up, and
// alice's chat to bob (stox runs with chat.mode = "auto", and bob has shown
// he takes MSRP) makes stox INVITE him, until he hangs up. It then keeps
// running and prints how to connect your own XMPP client and SIP phone;
// Ctrl-C stops everything it started.
//
//	go run ./examples/demo                run until Ctrl-C (SIGINT or SIGTERM)
//	go run ./examples/demo -once          run the scripted exchange, check it, exit 0 or 1
//
// Prosody and prosodyctl must be installed (`make demo` installs them).
// The SIP user is a small SIP agent in this program (sipgo), which is also
// bob's presence agent and MSRP endpoint (stox's msrp package), stox's
// outbound proxy and a registrar for your own SIP phone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.once, "once", false, "run the scripted exchange, check every step and exit (0: all worked, 1: a step failed)")
	fs.StringVar(&o.stoxBin, "stox", "", "stox binary to run (default: go build ./examples/gateway into a temporary directory)")
	fs.StringVar(&o.stoxLog, "stox-log", "info", "stox's log.level: debug (shows message bodies), info, warn or error")
	fs.BoolVar(&o.randomPorts, "random-ports", false, "always use free random loopback ports (-once always does); "+
		"otherwise SIP uses 5060 (stox) and 5070 (demo SIP agent) when they are free")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	switch o.stoxLog {
	case "debug", "info", "warn", "error":
	default:
		fmt.Fprintf(stderr, "demo: -stox-log: want debug, info, warn or error, not %q\n", o.stoxLog)
		return 2
	}
	if o.once {
		o.randomPorts = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runDemo(ctx, o, stdout); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	return 0
}

// runDemo starts everything, runs the script and, unless o.once, waits for
// ctx to end; it always stops what it started before it returns.
func runDemo(ctx context.Context, o options, out io.Writer) (err error) {
	d := newDemo(o, out)
	defer func() {
		if cerr := d.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := d.start(ctx); err != nil {
		if ctx.Err() != nil {
			if o.once {
				return errors.New("interrupted during start-up")
			}
			d.say("stopping (signal received during start-up)")
			return nil
		}
		return err
	}
	if err := d.script(ctx); err != nil {
		if ctx.Err() != nil && !o.once {
			return nil // Ctrl-C in the middle of the script
		}
		return err
	}
	if o.once {
		d.say("all steps worked")
		return nil
	}
	d.banner()
	d.interactive()
	<-ctx.Done()
	d.say("stopping (signal received)")
	return nil
}
