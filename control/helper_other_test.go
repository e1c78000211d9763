//go:build !unix

package control

import "fmt"

func runHelper(mode string) int {
	fmt.Println("helper: not supported on this system:", mode)
	return 2
}
