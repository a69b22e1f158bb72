package main

import "syscall"

// sysProcAttr makes a started process die with the runner, even when the
// runner is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
