package secretstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/zalando/go-keyring"
)

// ErrUnavailable matches (with errors.Is) the errors that mean there is no
// usable OS keyring on this session, as opposed to a keyring that answered
// with a failure.
var ErrUnavailable = errors.New("the OS keyring is unavailable")

// unavailableError says in plain words why there is no keyring; err is
// what go-keyring (or the session check) said.
type unavailableError struct {
	reason string
	err    error
	// detail asks Error to append err's text, for reasons too general to
	// stand alone.
	detail bool
}

func (e *unavailableError) Error() string {
	if e.detail && e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

func (e *unavailableError) Unwrap() error { return e.err }

func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// unavailable reports whether err means "no keyring here" (so a fallback
// file is the only place left), rather than "the keyring said no".
func unavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// TimeoutError means the keyring did not answer in time, typically because
// it is locked and waiting for a password prompt that nobody can see.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("the OS keyring did not answer within %v (is it locked and waiting for a password prompt?)", e.After)
}

// errBusy is returned while an earlier call that timed out still waits for
// the keyring: calls are not stacked behind a keyring that hangs.
var errBusy = errors.New("an earlier request to the OS keyring has not been answered yet (is it locked and waiting for a password prompt?)")

// slot admits one keyring call at a time. The goroutine that makes the
// call holds it until go-keyring returns, even after its caller gave up
// waiting, so at most one such goroutine exists.
var slot = make(chan struct{}, 1)

// call runs op, a go-keyring call, waiting at most timeout for it (and for
// an earlier call to finish). op's results must only be read after call
// returned nil or op's own error.
func call(timeout time.Duration, op func() error) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case slot <- struct{}{}:
	case <-t.C:
		return errBusy
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-slot }()
		done <- op()
	}()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return &TimeoutError{After: timeout}
	}
}

// classify turns a go-keyring error into one that says what went wrong in
// plain words; keyring.ErrNotFound and keyring.ErrSetDataTooBig pass
// through.
func classify(err error) error {
	var te *TimeoutError
	switch {
	case err == nil, errors.Is(err, keyring.ErrNotFound), errors.Is(err, errBusy), errors.As(err, &te):
		return err
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return fmt.Errorf("the OS keyring refused the secret as too long: %w", err)
	}
	return classifyPlatform(err)
}

func keyringSet(timeout time.Duration, service, account string, b []byte) error {
	if err := sessionCheck(); err != nil {
		return err
	}
	v := string(b)
	return classify(call(timeout, func() error { return keyring.Set(service, account, v) }))
}

func keyringGet(timeout time.Duration, service, account string) ([]byte, error) {
	if err := sessionCheck(); err != nil {
		return nil, err
	}
	var v string
	err := call(timeout, func() error {
		var err error
		v, err = keyring.Get(service, account)
		return err
	})
	if err != nil {
		return nil, classify(err)
	}
	return []byte(v), nil
}

func keyringDelete(timeout time.Duration, service, account string) error {
	if err := sessionCheck(); err != nil {
		return err
	}
	return classify(call(timeout, func() error { return keyring.Delete(service, account) }))
}
