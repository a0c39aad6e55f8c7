package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// errHelpShown ends a command after -h printed its manual (exit 0).
var errHelpShown = errors.New("help shown")

// usageError is a mistake in the command line: exit status 2, with the usage
// line and a pointer to -h.
type usageError struct {
	sub   string // "objectives show"; empty means the command itself
	usage string // usage line; empty means the command's
	msg   string
}

func (u *usageError) Error() string { return u.msg }

func (u *usageError) cmd(c *command) string {
	if u.sub != "" {
		return u.sub
	}
	return c.name
}

func (u *usageError) usageLine(c *command) string {
	if u.usage != "" {
		return u.usage
	}
	return c.usage
}

// flags is a FlagSet that knows its command's name, usage line and manual.
type flags struct {
	*flag.FlagSet
	name  string // "objectives show"
	usage string
	long  string
	out   io.Writer
}

func newFlags(e *env, name, usage, long string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{FlagSet: fs, name: name, usage: usage, long: long, out: e.stdout}
}

// usagef returns a usage error for this (sub)command.
func (f *flags) usagef(format string, args ...any) error {
	return &usageError{sub: f.name, usage: f.usage, msg: fmt.Sprintf(format, args...)}
}

// parse parses flags that may come before, between or after positional
// arguments, and returns the positional ones. "--" ends flag parsing. -h
// prints the manual and returns errHelpShown; an unknown flag suggests the
// closest known one.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.printHelp()
			return nil, errHelpShown
		}
		if err != nil {
			msg := err.Error()
			if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				name = strings.TrimLeft(name, "-")
				var known []string
				f.VisitAll(func(fl *flag.Flag) { known = append(known, fl.Name) })
				msg = "unknown flag --" + name
				if s := closest(name, known); s != "" {
					msg += " (did you mean --" + s + "?)"
				}
			}
			return nil, f.usagef("%s", msg)
		}
		rest := f.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseNoArgs is parse for commands that take no positional arguments.
func (f *flags) parseNoArgs(args []string) error {
	pos, err := f.parse(args)
	if err == nil && len(pos) > 0 {
		err = f.usagef("unexpected argument %q", pos[0])
	}
	return err
}

// printHelp writes the manual: usage line, prose, then the flags.
// set reports whether the flag name was given on the command line.
func (f *flags) set(name string) bool {
	found := false
	f.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			found = true
		}
	})
	return found
}

func (f *flags) printHelp() {
	w := f.out
	fmt.Fprintf(w, "usage: %s\n\n%s\n", f.usage, strings.TrimSpace(f.long))
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nFlags:\n")
	f.VisitAll(func(fl *flag.Flag) {
		typ, usage := flag.UnquoteUsage(fl)
		head := "  --" + fl.Name
		if typ != "" {
			head += " " + strings.ToUpper(typ)
		}
		fmt.Fprintf(w, "%s\n      %s", head, usage)
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", fl.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// subcommand dispatches "selector NAME SUB …" to one of subs.
func subcommand(e *env, cmd *command, args []string, subs map[string]func(*env, []string) error) error {
	if len(args) == 0 {
		return &usageError{msg: "missing subcommand"}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fmt.Fprintf(e.stdout, "usage: %s\n\n%s\n", cmd.usage, strings.TrimSpace(cmd.long))
		return errHelpShown
	}
	fn, ok := subs[args[0]]
	if !ok {
		var names []string
		for n := range subs {
			names = append(names, n)
		}
		msg := fmt.Sprintf("unknown subcommand %q", args[0])
		if s := closest(args[0], names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return &usageError{msg: msg}
	}
	return fn(e, args[1:])
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// parseFloats reads a comma-separated list of finite numbers.
func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		v, err := strconv.ParseFloat(part, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q is not a finite number", part)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// closest returns the candidate nearest to s by edit distance when it is a
// plausible typo, or "".
func closest(s string, candidates []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= 2 && bestD < len(s) {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// fmtG formats a number compactly for tables: five significant digits, "–"
// for NaN.
func fmtG(x float64) string {
	switch {
	case math.IsNaN(x):
		return "–"
	}
	return strconv.FormatFloat(x, 'g', 5, 64)
}
