package openai

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestSSEReaderKeepsEventsAsTheyCame(t *testing.T) {
	stream := "data: {\"a\":1}\n\n: keep-alive comment\n\nevent: x\r\ndata: line1\r\ndata: line2\r\n\r\n\n\ndata: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n"
	r := NewSSEReader(strings.NewReader(stream))
	var raws, datas []string
	for {
		raw, data, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, string(raw))
		datas = append(datas, string(data))
	}
	if strings.Join(raws, "") != strings.Replace(stream, "\n\n\ndata: {\"usage\"", "\ndata: {\"usage\"", 1) {
		t.Errorf("raw bytes changed:\n%q", strings.Join(raws, ""))
	}
	want := []string{`{"a":1}`, ``, "line1\nline2", `{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, `[DONE]`}
	if strings.Join(datas, "|") != strings.Join(want, "|") {
		t.Errorf("data = %q", datas)
	}
	u, ok := UsageOf([]byte(datas[3]))
	if !ok || u.PromptTokens != 3 || u.CompletionTokens != 4 || u.TotalTokens != 7 {
		t.Errorf("usage %+v %v", u, ok)
	}
	if !Done([]byte(datas[4])) {
		t.Error("[DONE] not recognised")
	}
}

func TestSSEReaderCutStream(t *testing.T) {
	r := NewSSEReader(strings.NewReader("data: {\"a\":1}\n\ndata: {\"b\""))
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	// A last event without its blank line is still delivered…
	if _, data, err := r.Next(); err != nil || string(data) != `{"b"` {
		t.Fatalf("%q %v", data, err)
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the end: %v", err)
	}
	// …but a cut in the middle of a line with no data is an error.
	r = NewSSEReader(strings.NewReader("event: x\n"))
	if _, _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut event: %v", err)
	}
}

func TestSSEReaderBoundsEvents(t *testing.T) {
	r := NewSSEReader(io.MultiReader(strings.NewReader("data: "), bytes.NewReader(bytes.Repeat([]byte("x"), MaxEventBytes+10)), strings.NewReader("\n\n")))
	if _, _, err := r.Next(); err != ErrEventTooLarge {
		t.Fatalf("huge event: %v", err)
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data:x\r\n\r\n:comment\n\nevent: e\ndata: 1\ndata: 2\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := NewSSEReader(bytes.NewReader(stream))
		total := 0
		for i := 0; i < len(stream)+2; i++ {
			raw, _, err := r.Next()
			if err != nil {
				break
			}
			if len(raw) == 0 {
				t.Fatal("empty event returned")
			}
			total += len(raw)
		}
		if total > len(stream) {
			t.Fatalf("read %d bytes out of %d", total, len(stream))
		}
	})
}

func TestUsageOf(t *testing.T) {
	cases := []struct {
		body string
		want int64 // completion tokens; -1 = no usage
	}{
		{`{"choices":[{"message":{"content":"the \"usage\": {\"completion_tokens\": 99}"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`, 2},
		{`{"choices":[],"usage" : {"completion_tokens":5}}`, 5},
		{`{"choices":[{"delta":{"content":"x"}}],"usage":null}`, -1},
		{`{"choices":[{"delta":{"content":"\"usage\":{}"}}]}`, -1},
		{`{"usage":{"completion_tokens":"many"}}`, -1},
		{`{"usage":`, -1},
	}
	for _, c := range cases {
		u, ok := UsageOf([]byte(c.body))
		if (c.want < 0 && ok) || (c.want >= 0 && (!ok || u.CompletionTokens != c.want)) {
			t.Errorf("%s → %+v %v", c.body, u, ok)
		}
	}
}

func FuzzUsageOf(f *testing.F) {
	f.Add([]byte(`{"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"a":"\"usage\":{","usage": {"completion_tokens":2}}`))
	f.Fuzz(func(t *testing.T, body []byte) { UsageOf(body) })
}

func TestEventReady(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewSSEReader(pr)
	go pw.Write([]byte("data: 1\n\ndata: 2\n\ndata: 3"))
	if _, data, _ := r.Next(); string(data) != "1" {
		t.Fatalf("first event %q", data)
	}
	if !r.EventReady() {
		t.Error("event 2 is buffered whole but not reported ready")
	}
	r.Next()
	if r.EventReady() {
		t.Error("event 3 is incomplete but reported ready: the relay would hold event 2 back")
	}
	pw.Close()
}

func TestSSEReaderEventsLongerThanItsBuffer(t *testing.T) {
	long := strings.Repeat("é", 10000)
	r := NewSSEReader(strings.NewReader("data: " + long + "\ndata: x\n\ndata: [DONE]\n\n"))
	raw, data, err := r.Next()
	if err != nil || string(data) != long+"\nx" || string(raw) != "data: "+long+"\ndata: x\n\n" {
		t.Fatalf("long event: %v, %d bytes of data", err, len(data))
	}
	if _, data, _ := r.Next(); !Done(data) {
		t.Fatalf("next event %q", data)
	}
}
