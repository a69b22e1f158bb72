package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guichet/guichet"
)

// spill is the ledger's safety net: usage lines as JSON lines in files
// under dir/ledger-spill. New lines are appended to spill.jsonl and
// fsync'd before append returns; a replay first renames that file
// (so appends go on in a fresh one), then sends it to the store and
// removes it only once every batch was taken.
type spill struct {
	dir     string
	mu      sync.Mutex // guards the current file
	lines   atomic.Int64
	current string
}

const spillName = "spill.jsonl"

func openSpill(dataDir string) (*spill, error) {
	dir := filepath.Join(dataDir, "ledger-spill")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("ledger spill directory: %w", err)
	}
	s := &spill{dir: dir, current: filepath.Join(dir, spillName)}
	files, err := s.files()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		s.lines.Add(int64(bytes.Count(b, []byte{'\n'})))
	}
	return s, nil
}

// files lists the spill files, oldest first (replaying-* before spill.jsonl).
func (s *spill) files() ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(s.dir, "replaying-*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches) // names carry a fixed-width timestamp
	if _, err := os.Stat(s.current); err == nil {
		matches = append(matches, s.current)
	}
	return matches, nil
}

func (s *spill) backlog() int64 { return s.lines.Load() }

// append writes lines and syncs them to disk.
func (s *spill) append(lines []guichet.UsageLine) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.current, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	s.lines.Add(int64(len(lines)))
	return f.Close()
}

// replay sends every spilled line to record, in batches of size, oldest
// file first. It returns how many lines were taken, and stops at the
// first failure (those files stay for the next replay).
func (s *spill) replay(size int, record func([]guichet.UsageLine) error) (int, error) {
	s.mu.Lock()
	if _, err := os.Stat(s.current); err == nil {
		name := filepath.Join(s.dir, "replaying-"+strconv.FormatInt(time.Now().UnixNano(), 10)+".jsonl")
		if err := os.Rename(s.current, name); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	s.mu.Unlock()
	files, err := s.files()
	if err != nil {
		return 0, err
	}
	taken := 0
	for _, f := range files {
		if f == s.current {
			continue // appended since the rename: next time
		}
		n, err := replayFile(f, size, record)
		if err != nil {
			return taken, err
		}
		if err := os.Remove(f); err != nil {
			return taken, err
		}
		taken += n
		s.lines.Add(-int64(n))
	}
	return taken, nil
}

func replayFile(path string, size int, record func([]guichet.UsageLine) error) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	batch := make([]guichet.UsageLine, 0, size)
	lines := 0
	for sc.Scan() {
		lines++
		var l guichet.UsageLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue // a line torn by a crash before its fsync: it was never acknowledged
		}
		batch = append(batch, l)
		if len(batch) == size {
			if err := record(batch); err != nil {
				return 0, err
			}
			batch = batch[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if len(batch) > 0 {
		if err := record(batch); err != nil {
			return 0, err
		}
	}
	return lines, nil
}
