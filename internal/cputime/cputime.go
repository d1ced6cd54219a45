// Package cputime reads the CPU time this process has used, for benchmarks
// that report CPU per job: on two shared cores it says more than wall time.
package cputime

import (
	"fmt"
	"syscall"
	"time"
)

// Used returns the user and system CPU time the process has used so far.
func Used() time.Duration {
	var ru syscall.Rusage
	// It fails only for a bad argument (EINVAL, EFAULT), never at run time.
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(fmt.Sprintf("cputime: getrusage: %v", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
