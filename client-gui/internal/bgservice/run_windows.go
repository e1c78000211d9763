package bgservice

import "os"

// endedByItself ends the process when the engine stopped without being
// asked to: kardianos's Windows backend has no way for a service to stop
// itself, and an exit without a stop request makes the Service Control
// Manager apply the recovery action (restart after 2 s).
func endedByItself(err error) {
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}
