package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the command: with GUICHET_SIM_ARGS set it
// runs main with those arguments.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("GUICHET_SIM_ARGS"); ok {
		os.Args = append([]string{"guichet-sim"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(args string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GUICHET_SIM_ARGS="+args)
	return cmd
}

func TestListenOnFreePortAndShutdown(t *testing.T) {
	cmd := command("--listen 127.0.0.1:0 --model a,b --ttft 1ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^guichet-sim \(an upstream simulator, not a model\) listening on (http://127\.0\.0\.1:[1-9][0-9]*) serving a,b\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("start-up line %q", line)
	}
	resp, err := http.Get(m[1] + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"b"`) {
		t.Fatalf("/v1/models: %d %s", resp.StatusCode, body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range []string{"--output-mode sometimes", "--content poetry", "--error-rate 2",
		"--scheduling-policy lottery", "--block-tokens 0", "--prefix-cache-blocks -1", "--itl-per-running -1ms"} {
		out, err := command("--listen 127.0.0.1:0 " + args).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "guichet-sim:") {
			t.Errorf("%s: %v %s", args, err, out)
		}
	}
}
