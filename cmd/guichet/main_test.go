package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guichet/guichet/config"
)

func captureStderr(t *testing.T, f func() int) (int, string) {
	t.Helper()
	r, w, _ := os.Pipe()
	old := os.Stderr
	os.Stderr = w
	code := f()
	w.Close()
	os.Stderr = old
	out, _ := io.ReadAll(r)
	return code, string(out)
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("models:\n  - name: a\n    type: text-generation\n    provider: []\n"), 0o600)
	code, out := captureStderr(t, func() int { return run([]string{"config", "check", bad}) })
	if code != 1 || !strings.Contains(out, `models[0].provider (line 4): unknown key "provider"; did you mean "providers"?`) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, config.Example, 0o600)
	if code, out := captureStderr(t, func() int { return run([]string{"config", "check", good}) }); code != 0 {
		t.Errorf("the example config fails the check: %s", out)
	}
}

func TestServeRefusesWithoutAStrongMasterKey(t *testing.T) {
	for _, key := range []string{"", "short-key", "changeme"} {
		t.Setenv("GUICHET_MASTER_KEY", key)
		code, out := captureStderr(t, func() int { return run([]string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}) })
		if code != 1 || !strings.Contains(out, "master key") {
			t.Errorf("key %q: exit %d, output:\n%s", key, code, out)
		}
		if key != "" && strings.Contains(out, key) {
			t.Errorf("the rejected key was printed: %s", out)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _ := captureStderr(t, func() int { return run([]string{"serv"}) }); code != 2 {
		t.Errorf("exit %d", code)
	}
}
