package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// command is one subcommand. Each lives in its own file and registers itself
// in commands (see commands.go).
type command struct {
	name  string
	usage string // one line: "selector theory lemma [--json]"
	short string // one line for "selector help"
	long  string // the manual printed by -h
	run   func(env *env, args []string) error
}

// env is what a subcommand may touch: its output streams, the logger and a
// context cancelled by Ctrl-C. Tests build their own.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	log    zerolog.Logger
	tty    bool // stderr is a terminal: progress bars and coloured logs
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C asks the command to stop cleanly; then the default
	// action is back, so that a second one stops the program at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const topUsage = `selector measures how much a base model already believes its fine-tuning
targets, places it on the capability continuum of Li et al. (ICML 2026), and
recommends the training objective to fine-tune it with.

usage: selector [--log-level LEVEL] <command> [arguments]

Commands:
%s
Global flags:
  --log-level LEVEL   debug, info, warn or error (default info; env CAPSEL_LOG_LEVEL)

Run 'selector <command> -h' (or 'selector help <command>') for a command's
manual. Help you ask for goes to stdout with exit status 0, as with Go's flag
package; a usage mistake prints the usage to stderr and exits 2; a runtime
error exits 1.
`

// run is main without os.Exit, so that tests can drive the whole program.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	level := os.Getenv("CAPSEL_LOG_LEVEL")
	gfs := flag.NewFlagSet("selector", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	gfs.StringVar(&level, "log-level", level, "")
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printTopUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "selector: %v\n", err)
		printTopUsage(stderr)
		return 2
	}
	args = gfs.Args()
	if len(args) == 0 {
		printTopUsage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	if name == "help" {
		if len(rest) == 0 {
			printTopUsage(stdout)
			return 0
		}
		name, rest = rest[0], []string{"-h"}
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "selector %s: unknown command\n", name)
		if s := closest(name, commandNames()); s != "" {
			fmt.Fprintf(stderr, "Did you mean 'selector %s'?\n", s)
		}
		fmt.Fprintln(stderr, "Run 'selector help' for usage.")
		return 2
	}
	lv, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		lv = zerolog.InfoLevel
		if level != "" {
			fmt.Fprintf(stderr, "selector: --log-level %q: want debug, info, warn or error\n", level)
			return 2
		}
	}
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, tty: isTerminal(stderr)}
	var lw io.Writer = stderr
	if e.tty {
		lw = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
	}
	e.log = zerolog.New(lw).Level(lv).With().Timestamp().Str("cmd", cmd.name).Logger()

	err = cmd.run(e, rest)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "selector %s: %s\n", ue.cmd(cmd), ue.msg)
		fmt.Fprintf(stderr, "usage: %s\n", ue.usageLine(cmd))
		fmt.Fprintf(stderr, "Run 'selector %s -h' for help.\n", ue.cmd(cmd))
		return 2
	default:
		fmt.Fprintf(stderr, "selector: %v\n", err)
		return 1
	}
}

func printTopUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, topUsage, b.String())
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func commandNames() []string {
	var out []string
	for _, c := range commands() {
		out = append(out, c.name)
	}
	return out
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
