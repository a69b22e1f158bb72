package openai

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestParseObjectKeepsValuesByteExact(t *testing.T) {
	body := []byte(` { "model" : "a", "guided_json":{"x":[1, 2.50,"}"]} ,"min_tokens":3,"s":"q\"uote","k\u00e9":null } `)
	o, err := ParseObject(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ key, raw string }{
		{"model", `"a"`},
		{"guided_json", `{"x":[1, 2.50,"}"]}`},
		{"min_tokens", `3`},
		{"s", `"q\"uote"`},
		{"ké", `null`},
	}
	if len(o) != len(want) {
		t.Fatalf("got %q", o)
	}
	for i, w := range want {
		if o[i].Key != w.key || string(o[i].Raw) != w.raw {
			t.Errorf("member %d: %q = %s, want %q = %s", i, o[i].Key, o[i].Raw, w.key, w.raw)
		}
	}
	// Keys keep their original spelling (k\u00e9 stays escaped).
	out := o.AppendWith(nil, Member{Key: "model", Raw: []byte(`"b"`)}, Member{Key: "stream_options", Raw: []byte(`{"include_usage":true}`)})
	if string(out) != `{"model":"b","guided_json":{"x":[1, 2.50,"}"]},"min_tokens":3,"s":"q\"uote","k\u00e9":null,"stream_options":{"include_usage":true}}` {
		t.Errorf("rewritten: %s", out)
	}
}

func TestParseObjectRejects(t *testing.T) {
	for _, body := range []string{``, `{`, `[1]`, `"x"`, `{"a":1,}`, `{"a":1}{"b":2}`} {
		if _, err := ParseObject([]byte(body)); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
}

// FuzzParseObject checks the scanner against encoding/json: same keys,
// same values, and a rewrite that is still the same JSON.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"}\"","b":[{"c":{}}],"d":-1.5e3,"e":true}`, ` {"x" : [ ] , "y":null}`, `{"a":{"a":{"a":[1,[2,[3]]]}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := ParseObject(body)
		var ref map[string]json.RawMessage
		refErr := json.Unmarshal(body, &ref)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("ParseObject err=%v, encoding/json err=%v", err, refErr)
		}
		if err != nil {
			return
		}
		for k, v := range ref {
			if !bytes.Equal(bytes.TrimSpace(o.Get(k)), bytes.TrimSpace(v)) {
				t.Fatalf("key %q: got %q want %q", k, o.Get(k), v)
			}
		}
		// Decoded as raw values: a number too large for a float64 is
		// still JSON.
		var back map[string]json.RawMessage
		if err := json.Unmarshal(o.AppendWith(nil), &back); err != nil {
			t.Fatalf("rewrite is not JSON: %v", err)
		}
	})
}

func FuzzDecodeChat(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:x"}}]}],"tools":[{"type":"function","function":{"name":"f"}}],"n":2,"stream":true,"stream_options":{"include_usage":false}}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"tool","content":"x"}],"response_format":{"type":"json_schema"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeChat(body)
		if err == nil && (req.Model == "" || req.Object == nil) {
			t.Fatal("accepted without a model")
		}
		if err != nil && (err.Status < 400 || err.Status > 499 || err.Message == "") {
			t.Fatalf("bad error %+v", err)
		}
	})
}

func FuzzDecodeOthers(f *testing.F) {
	f.Add([]byte(`{"model":"m","input":["a","b"],"encoding_format":"base64"}`))
	f.Add([]byte(`{"model":"m","prompt":[[1,2],[3]]}`))
	f.Add([]byte(`{"model":"m","query":"q","documents":["a",{"text":"b"}],"top_n":1}`))
	f.Add([]byte(`{"model":"m","prompt":"q","input":["a"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, decode := range []func([]byte) (*Request, any){
			func(b []byte) (*Request, any) { r, e := DecodeEmbeddings(b); return r, e },
			func(b []byte) (*Request, any) { r, e := DecodeCompletion(b); return r, e },
		} {
			decode(body)
		}
		if r, err := DecodeRerank(body); err == nil && (r.Query == "" || len(r.Documents) == 0) {
			t.Fatal("rerank accepted without query or documents")
		}
	})
}

func TestAddToUsage(t *testing.T) {
	body := []byte(`{"id":"x","choices":[{"text":"a \"usage\": {}"}],"usage":{"prompt_tokens":3,"completion_tokens":2, "total_tokens":5},"z":1}`)
	got, ok := AddToUsage(body, Member{Key: "cost", Raw: []byte("0.5")}, Member{Key: "carbon", Raw: []byte("null")})
	want := `{"id":"x","choices":[{"text":"a \"usage\": {}"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"cost":0.5,"carbon":null},"z":1}`
	if !ok || string(got) != want {
		t.Fatalf("got %s (%v)\nwant %s", got, ok, want)
	}
	for _, b := range []string{`{"usage":null}`, `{"id":1}`, `not json`, `[1]`} {
		if got, ok := AddToUsage([]byte(b), Member{Key: "cost", Raw: []byte("1")}); ok || string(got) != b {
			t.Errorf("%s: %s %v; want it unchanged", b, got, ok)
		}
	}
}

// FuzzAddToUsage: whatever the upstream sends, the rewrite is valid JSON
// with the members added, or the body unchanged.
func FuzzAddToUsage(f *testing.F) {
	f.Add([]byte(`{"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"a":"\"usage\":{}","usage":{}}`))
	f.Add([]byte(`{"usage":null}`))
	f.Add([]byte(`{"usage":{"x":[1,{"y":2}]} , "z" : "\u00e9"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := AddToUsage(body, Member{Key: "cost", Raw: []byte("1.5")})
		if !ok {
			if string(got) != string(body) {
				t.Fatalf("not rewritten but changed: %q → %q", body, got)
			}
			return
		}
		var v struct {
			Usage struct {
				Cost float64 `json:"cost"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(got, &v); err != nil || v.Usage.Cost != 1.5 {
			t.Fatalf("%q → %q: %v %+v", body, got, err, v)
		}
	})
}
