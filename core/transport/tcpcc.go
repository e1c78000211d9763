package transport

import (
	"log/slog"
	"sync"
)

// ccNote reports, once, whether the kernel granted the TCP congestion
// control asked for: a user on a kernel without BBR should know why TCP mode
// is slower on lossy links, but not once per connection.
type ccNote struct{ once sync.Once }

func (n *ccNote) note(log *slog.Logger, name string) func(ok bool, err error) {
	return func(ok bool, err error) {
		n.once.Do(func() {
			if ok {
				log.Debug("TCP congestion control set", "algorithm", name)
				return
			}
			log.Info("TCP congestion control not available; the kernel's default is used",
				"wanted", name, "err", err, "hint", "modprobe tcp_"+name)
		})
	}
}
