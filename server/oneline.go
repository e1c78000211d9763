package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// oneLine returns s with control characters (line breaks, tabs, escape
// sequences) and invalid UTF-8 written as Go escapes, \n or \x1b, so that
// a message quoting the command line, a link or a file stays one line on
// a terminal and in a log: a value cannot end it and forge another.
func oneLine(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u0085'
			b = append(b, q[1:len(q)-1]...)
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// oneLineError is err with its message made one line (see oneLine); a
// usage error stays a usage error.
func oneLineError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := oneLine(msg); clean != msg {
		if _, ok := err.(usageError); ok {
			return usageError{clean}
		}
		return fmt.Errorf("%s", clean)
	}
	return err
}

// Every subcommand's error is printed on one line, whatever it quotes.
func init() {
	for name, cmd := range subcommands {
		subcommands[name] = func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
			return oneLineError(cmd(ctx, args, stdout, stderr, getenv))
		}
	}
}
