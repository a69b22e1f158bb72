package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMark is the machine's busy CPU time and ours (this process and its
// waited-for children: the replicas, guichet, go build) at one moment.
type cpuMark struct {
	machine, ours time.Duration
	at            time.Time
}

func markCPU() cpuMark {
	m := cpuMark{at: time.Now(), machine: -1}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		var busy int64
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
				continue
			}
			busy += n
		}
		m.machine = time.Duration(busy) * time.Second / 100 // USER_HZ
	}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			m.ours += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return m
}

// foreignCPU is the CPU other processes used since m, in cores (1 = one
// core busy all along); -1 when unknown. Children still running are not
// counted as ours yet: take it once they have exited.
func (m cpuMark) foreignCPU() float64 {
	now := markCPU()
	if m.machine < 0 || now.machine < 0 {
		return -1
	}
	wall := now.at.Sub(m.at)
	if wall <= 0 {
		return -1
	}
	return max(float64((now.machine-m.machine)-(now.ours-m.ours))/float64(wall), 0)
}
