package transport

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// netSettle is how long the network must stay quiet after a change before
// the connection moves: an interface coming up announces its link, then
// its addresses, then its routes, one after the other.
const netSettle = 300 * time.Millisecond

// debounce calls fire once changes have stopped arriving for netSettle.
func debounce(ctx context.Context, changes <-chan struct{}, fire func()) {
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				return
			}
			timer = time.After(netSettle)
		case <-timer:
			timer = nil
			fire()
		}
	}
}

// pollNetwork reports a change whenever the set of interface addresses
// differs from the last look: the fallback where there is no netlink.
func pollNetwork(ctx context.Context, every time.Duration, changes chan<- struct{}) {
	last := addrSet()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if now := addrSet(); !slices.Equal(now, last) {
				last = now
				select {
				case changes <- struct{}{}:
				default:
				}
			}
		}
	}
}

func addrSet() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// watchNetwork calls onChange (after things settle) whenever the system's
// addresses or links change; it returns when ctx is done and everything it
// started has stopped.
func watchNetwork(ctx context.Context, log *slog.Logger, onChange func()) {
	changes := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if err := watchNetlink(ctx, changes); err != nil {
			log.Debug("no netlink; polling the interfaces for network changes", "err", err)
			pollNetwork(ctx, 2*time.Second, changes)
		}
	})
	debounce(ctx, changes, func() {
		log.Info("the network changed; moving the connection to the new path")
		onChange()
	})
}
