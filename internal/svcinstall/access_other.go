//go:build !unix

package svcinstall

// UnreadableByService has nothing to check where there are no Unix
// permissions.
func UnreadableByService([]string) []string { return nil }
