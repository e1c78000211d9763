package lab

import (
	"fmt"
	"sort"
	"time"
)

// Profile is a named link: the same parameters in both directions.
type Profile struct {
	Name string
	// RTT is the round-trip propagation delay (each direction half).
	RTT time.Duration
	// Loss is the random loss probability in each direction.
	Loss float64
	// Jitter is each direction's jitter.
	Jitter time.Duration
	// RateBitsPerSec is each direction's bandwidth.
	RateBitsPerSec int64
	// Note says what real network the profile stands for.
	Note string
}

// Params returns the per-direction link parameters.
func (p Profile) Params() Params {
	return Params{Delay: p.RTT / 2, Jitter: p.Jitter, Loss: p.Loss, RateBitsPerSec: p.RateBitsPerSec}
}

func (p Profile) String() string {
	return fmt.Sprintf("%s: RTT %v, loss %.1f%% each way, jitter %v, %d Mbit/s", p.Name, p.RTT, 100*p.Loss, p.Jitter, p.RateBitsPerSec/1e6)
}

// Profiles are the design document's network classes, with a bandwidth
// stated for each (the document states none). Loss applies in each
// direction, as netem on both ends would.
var Profiles = map[string]Profile{
	"lan":          {Name: "lan", RTT: time.Millisecond, RateBitsPerSec: 500e6, Note: "a LAN; the rate is what the userspace emulator sustains here"},
	"wan":          {Name: "wan", RTT: 50 * time.Millisecond, Loss: 0.001, RateBitsPerSec: 100e6, Note: "a good long-haul path"},
	"mobile":       {Name: "mobile", RTT: 100 * time.Millisecond, Loss: 0.01, Jitter: 10 * time.Millisecond, RateBitsPerSec: 30e6, Note: "4G"},
	"lossy":        {Name: "lossy", RTT: 200 * time.Millisecond, Loss: 0.03, RateBitsPerSec: 20e6, Note: "a bad Wi-Fi or a congested international link"},
	"cross-border": {Name: "cross-border", RTT: 250 * time.Millisecond, Loss: 0.005, RateBitsPerSec: 20e6, Note: "a filtered international path"},
}

// ProfileNames lists the profiles in a stable order (by RTT).
func ProfileNames() []string {
	names := make([]string, 0, len(Profiles))
	for n := range Profiles {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return Profiles[names[i]].RTT < Profiles[names[j]].RTT })
	return names
}
