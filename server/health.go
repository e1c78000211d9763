package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/qtunnel/qtunnel/control"
)

// cmdHealth is qtunnel health, for container health checks (the image's
// HEALTHCHECK) and Kubernetes probes: exit 0 when the local qtunnel
// answers on its control socket and is doing its job (a server serving, a
// client connected to its server), else a one-line reason on stderr and
// exit 1.
func cmdHealth(ctx context.Context, args []string, stdout, _ io.Writer, _ func(string) string) error {
	var cf controlFlags
	fs := newCommandFlags("health", &cf)
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `long` without an answer")
	if done, err := parseCommand(fs, args, stdout); done || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("health: unexpected argument %q", fs.Arg(0))
	}
	c, err := cf.client()
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	want := control.StateConnected
	if st.Role == control.RoleServer {
		want = control.StateServing
	}
	if st.State != want {
		why := ""
		if st.LastError != "" {
			why = ": " + st.LastError
		}
		return fmt.Errorf("health: %s state is %s, want %s%s", st.Role, st.State, want, why)
	}
	fmt.Fprintf(stdout, "ok: %s %s since %s\n", st.Role, st.State, st.Since.UTC().Format(time.RFC3339))
	return nil
}
