package httpapi

import (
	"bytes"
	"mime/multipart"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// ragTenancy is a tenancy where alice owns collection 1, holding one
// document (id 1) about school holidays.
func ragTenancy(t testing.TB) *tenancy {
	tn := newTenancy(t, `[{"model":"*","type":"rpm","value":null}]`)
	tn.call(tn.alice, "POST", "/v1/collections", `{"name":"école"}`, 201)
	w := tn.upload(tn.alice, url.Values{"collection_id": {"1"}}, "vacances.md", []byte("# Vacances\n\nLes vacances scolaires de printemps commencent en avril.\n"))
	if w.Code != 201 {
		t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	return tn
}

// upload sends a multipart upload with the fields and, if name is not
// empty, a file.
func (tn *tenancy) upload(apiKey string, fields url.Values, name string, data []byte) *httptest.ResponseRecorder {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	if name != "" {
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(data)
	}
	mw.Close()
	req := httptest.NewRequest("POST", "/v1/documents", &b)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	tn.s.ServeHTTP(w, req)
	return w
}

// TestRAGWithoutEmbeddingModel: with no rag.embedding_model, search is
// lexical by default and semantic is refused with the fix.
func TestRAGWithoutEmbeddingModel(t *testing.T) {
	tn := ragTenancy(t)
	body := tn.call(tn.alice, "POST", "/v1/search", `{"query":"vacances avril","collection_ids":[1]}`, 200)
	if !strings.Contains(string(body), `"method":"lexical"`) || !strings.Contains(string(body), "printemps") {
		t.Errorf("default search: %s", body)
	}
	body = tn.call(tn.alice, "POST", "/v1/search", `{"query":"vacances","collection_ids":[1],"method":"semantic"}`, 400)
	if !strings.Contains(string(body), "rag.embedding_model") {
		t.Errorf("semantic without a model: %s", body)
	}
	// Bob may not read alice's document nor its chunks.
	tn.call(tn.bob, "GET", "/v1/documents/1", "", 404)
	tn.call(tn.bob, "GET", "/v1/documents/1/chunks", "", 404)
	tn.call(tn.bob, "GET", "/v1/chunks/1", "", 404)
}

// FuzzRAGBodies: whatever the JSON bodies of the RAG endpoints and of a
// chat's search tool hold, the answer is never a 5xx, and errors come in
// the envelope.
func FuzzRAGBodies(f *testing.F) {
	ops := []struct{ method, path string }{
		{"POST", "/v1/search"}, {"POST", "/v1/collections"}, {"PATCH", "/v1/collections/1"},
		{"POST", "/v1/documents/1/chunks"}, {"POST", "/v1/chat/completions"},
	}
	f.Add(uint8(0), `{"query":"vacances","collection_ids":[1],"metadata_filters":{"filters":[{"key":"document_name","type":"sw","value":"vac"},{"key":"page","type":"eq","value":1}],"operator":"or"},"limit":5,"offset":1,"rff_k":0,"score_threshold":0.5}`)
	f.Add(uint8(0), `{"prompt":"x","collections":[1,1,2],"k":3,"method":"lexical"}`)
	f.Add(uint8(1), `{"name":"n","description":"d","visibility":"public"}`)
	f.Add(uint8(2), `{"visibility":"private","name":" "}`)
	f.Add(uint8(3), `{"chunks":[{"content":"a","metadata":{"k":[1,"b",true]}}]}`)
	f.Add(uint8(4), `{"model":"chat","messages":[{"role":"user","content":[{"type":"text","text":"vacances ?"}]}],"tools":[{"type":"search","collection_ids":[1]},{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"}`)
	f.Add(uint8(4), `{"model":"chat","messages":[{"role":"user","content":"vacances ?"}],"search":true,"search_args":{"collections":[1],"k":2}}`)
	tn := ragTenancy(f)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		op := ops[int(which)%len(ops)]
		w := tn.do(tn.alice, op.method, op.path, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q → %d %s", op.method, op.path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("error without envelope: %s", w.Body)
		}
	})
}

// FuzzUploadFields: any form fields of an upload give a 2xx or a clear
// 4xx, never a 5xx.
func FuzzUploadFields(f *testing.F) {
	f.Add("collection_id=1&chunk_size=20&chunk_overlap=5&chunk_unit=tokens&separators=[\"\\n\"]&metadata={\"a\":1}", "a.md", "# T\n\ntext text")
	f.Add("collection=1&chunker=NoSplitter&wait=false&preset_separators=html", "a.html", "<h1>T</h1><p>x</p>")
	f.Add("collection_id=1&is_separator_regex=true&separators=[\"(\"]", "a.txt", "x")
	f.Add("collection_id=1", "a.json", `[{"text":"t","title":"x","metadata":{"n":1}}]`)
	f.Add("collection_id=1", "a.pdf", "%PDF-1.4 broken")
	tn := ragTenancy(f)
	f.Fuzz(func(t *testing.T, query, name, data string) {
		fields, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		w := tn.upload(tn.alice, fields, name, []byte(data))
		if w.Code >= 500 {
			t.Fatalf("fields %v, file %q → %d %s", fields, name, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("error without envelope: %s", w.Body)
		}
	})
}
