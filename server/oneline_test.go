package main

import (
	"errors"
	"strings"
	"testing"
)

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain words: -listen=:443": "plain words: -listen=:443",
		"Büro 😀":                    "Büro 😀",
		"a\nqtunnel: forged":        `a\nqtunnel: forged`,
		"tab\tcr\r esc\x1b[31m":     `tab\tcr\r esc\x1b[31m`,
		"bad \xff\xfe utf8":         `bad \xff\xfe utf8`,
		"nel\u0085 del\x7f":         `nel\u0085 del\x7f`,
		"U+FFFD itself: \ufffd":     "U+FFFD itself: \ufffd",
		"":                          "",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOneLineError(t *testing.T) {
	if oneLineError(nil) != nil {
		t.Fatal("oneLineError(nil) != nil")
	}
	plain := errors.New("fine")
	if oneLineError(plain) != plain {
		t.Error("a one-line error was replaced")
	}
	err := oneLineError(usagef("-listen=%s: missing port", "\n"))
	var ue usageError
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "\n") {
		t.Errorf("oneLineError(usage error) = %#v", err)
	}
	if err := oneLineError(errors.New("a\nb")); err.Error() != `a\nb` {
		t.Errorf("oneLineError = %q", err)
	}
}
