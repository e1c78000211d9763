//go:build !unix

package secret

import "errors"

func mkfifo(string) error { return errors.New("not supported") }
