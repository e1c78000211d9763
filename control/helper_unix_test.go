//go:build unix

package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// helperPathEnv carries the socket path to a helper process.
const helperPathEnv = "QTUNNEL_CONTROL_TEST_PATH"

// runHelper is the test binary acting for TestOtherUserRefused, as
// another user:
//
//   - "dial": connect to the socket, print "raw: " and what a plain
//     request got back, then "client: " and what the Client made of it;
//   - "serve": serve a fake backend on the socket, print "ready", check
//     that this same user gets through ("self: ..."), and serve until
//     stdin is closed.
func runHelper(mode string) int {
	path := os.Getenv(helperPathEnv)
	switch mode {
	case "dial":
		fmt.Println("raw:", strconv.Quote(rawRequest(path)))
		fmt.Println("client:", describe(clientStatus(path)))
		return 0
	case "serve":
		ln, err := Listen(path)
		if err != nil {
			fmt.Println("listen:", err)
			return 1
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, ln, newFakeBackend()) }()
		fmt.Println("ready")
		fmt.Println("self:", describe(clientStatus(path)))
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
		if err := <-done; err != nil {
			fmt.Println("serve:", err)
			return 1
		}
		return 0
	}
	fmt.Println("unknown helper mode", mode)
	return 2
}

func clientStatus(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := NewClient(path).Status(ctx)
	return err
}

// describe sorts an error into a word the parent can match, then says it.
func describe(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrForbidden):
		return "forbidden: " + err.Error()
	case errors.Is(err, ErrNotRunning):
		return "notrunning: " + err.Error()
	}
	return "error: " + err.Error()
}
