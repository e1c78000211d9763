//go:build !unix

package secretstore

import "io/fs"

// checkPrivate has nothing to check on Windows, where mode bits mean
// nothing: the file is private by the access list it inherits from the
// user's profile directory, where FallbackFile is meant to be.
func checkPrivate(string, fs.FileInfo) error { return nil }
