//go:build !windows

package bgservice

// endedByItself needs to do nothing on Unix: wait returns when run does,
// so RunService returns.
func endedByItself(error) {}
