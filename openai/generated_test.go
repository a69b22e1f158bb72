package openai

import (
	"encoding/json"
	"testing"
)

func TestAppendGenerated(t *testing.T) {
	for _, c := range []struct{ chunk, want string }{
		{`{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, ""},
		{`{"choices":[{"delta":{"content":"Bonjour"}}]}`, "Bonjour"},
		{`{"choices":[{"delta":{"content": "é\n\"q\"\u00e9"}}]}`, "é\n\"q\"é"},
		{`{"choices":[{"delta":{"reasoning_content":"hmm","content":null}}]}`, "hmm"},
		{`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"meteo","arguments":"{\"ville\":"}}]}}]}`, `{"ville":meteo`},
		{`{"choices":[{"index":0,"text":" deux"}]}`, " deux"},
		{`{"choices":[{"delta":{"content":"a \"content\":\"b\""}}]}`, `a "content":"b"`}, // a key inside a string is not a key
		{`{"choices":[{"delta":{"content":"cut`, ""},
	} {
		if got := string(AppendGenerated(nil, []byte(c.chunk))); got != c.want {
			t.Errorf("%s → %q, want %q", c.chunk, got, c.want)
		}
	}
}

// FuzzAppendGenerated: any chunk is safe, and a chunk's content comes back
// exactly as encoding/json decodes it.
func FuzzAppendGenerated(f *testing.F) {
	f.Add("Bonjour", []byte(`{"choices":[{"delta":{"content":"x"}}]}`))
	f.Add("\"content\":\"", []byte(`{"content":`))
	f.Fuzz(func(t *testing.T, content string, chunk []byte) {
		AppendGenerated(nil, chunk)
		b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"delta": map[string]any{"content": content}}}})
		var want struct {
			Choices []struct{ Delta struct{ Content string } }
		}
		json.Unmarshal(b, &want)
		if got := string(AppendGenerated(nil, b)); got != want.Choices[0].Delta.Content {
			t.Fatalf("%s → %q, want %q", b, got, want.Choices[0].Delta.Content)
		}
	})
}
