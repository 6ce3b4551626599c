package router

import (
	"runtime/debug"
	"sync"
)

// The memorylimit key sets the Go runtime's soft memory limit
// (debug.SetMemoryLimit), which is the whole process's: the server sets
// it when a configuration with a memorylimit other than 0 is applied,
// and gives back the limit it found (GOMEMLIMIT's, or none) when a
// reload sets memorylimit to 0 or the server shuts down.

// minMemoryLimit is the smallest memorylimit other than 0: below it the
// collector would run all the time.
const minMemoryLimit = 16 << 20

// memLimit is the process's memory limit as servers of this process set
// it.
var memLimit struct {
	mu    sync.Mutex
	found int64   // the limit before any server set one
	by    *Server // the server whose limit is in force; nil: found is
}

// setMemoryLimit makes limit (0: the limit found) the process's, on
// behalf of s; it returns the limit in force before.
func setMemoryLimit(s *Server, limit int) int64 {
	memLimit.mu.Lock()
	defer memLimit.mu.Unlock()
	if memLimit.by == nil {
		if limit == 0 {
			return debug.SetMemoryLimit(-1)
		}
		memLimit.found = debug.SetMemoryLimit(-1)
	}
	if limit == 0 {
		memLimit.by = nil
		return debug.SetMemoryLimit(memLimit.found)
	}
	memLimit.by = s
	return debug.SetMemoryLimit(int64(limit))
}

// releaseMemoryLimit gives back the limit found, if s set the one in
// force.
func releaseMemoryLimit(s *Server) {
	memLimit.mu.Lock()
	by := memLimit.by
	memLimit.mu.Unlock()
	if by == s {
		setMemoryLimit(s, 0)
	}
}

// applyMemoryLimit sets the limit of cfg when it differs from old's.
func (s *Server) applyMemoryLimit(old, cfg *Config) {
	if old.MemoryLimit == cfg.MemoryLimit {
		return
	}
	prev := setMemoryLimit(s, cfg.MemoryLimit)
	s.log.Info("memory limit set", "memorylimit", cfg.MemoryLimit, "was", prev)
}

func checkMemoryLimit(c *checker, key string, f *Config) {
	if f.MemoryLimit != 0 && f.MemoryLimit < minMemoryLimit {
		c.addAt([]string{key}, "%d is below %d (16 MiB); 0 leaves the Go runtime's limit as it is", f.MemoryLimit, minMemoryLimit)
	}
}
