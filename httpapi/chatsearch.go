package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/tokens"
)

// Retrieval inside chat: a {"type": "search", …} tool (OpenGateLLM 0.4),
// or the older "search": true with "search_args". The gateway searches
// with the last user message, puts the passages found into that message
// with instructions to cite them, forwards the chat without the search
// fields, and returns the passages used as search_results.

// SearchTool is the {"type": "search"} chat tool: the fields of
// POST /v1/search, without the query (the last user message).
type SearchTool struct {
	Type string `json:"type" enum:"search"`
	SearchRequest
}

// wantsSearch reports whether a chat asks for retrieval.
func wantsSearch(o openai.Object) bool {
	if b := o.Get("search"); b != nil && string(b) != "false" && string(b) != "null" {
		return true
	}
	return bytes.Contains(o.Get("tools"), []byte(`"search"`)) && len(searchTools(o)) > 0
}

// searchTools returns the indexes of the search tools among tools.
func searchTools(o openai.Object) []int {
	var tools []struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(o.Get("tools"), &tools) != nil {
		return nil
	}
	var out []int
	for i, t := range tools {
		if t.Type == "search" {
			out = append(out, i)
		}
	}
	return out
}

// searchQuery reads the search to run from the tool or the old fields.
func searchQuery(o openai.Object) (*SearchRequest, *guichet.Error) {
	var req SearchRequest
	if idx := searchTools(o); len(idx) > 0 {
		if len(idx) > 1 {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "tools: give one search tool, not %d", len(idx)).WithParam("tools")
		}
		var tools []json.RawMessage
		json.Unmarshal(o.Get("tools"), &tools)
		var tool SearchTool
		dec := json.NewDecoder(bytes.NewReader(tools[idx[0]]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tool); err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "tools[%d] (search): %v; its fields are those of POST /v1/search, without query", idx[0], cleanJSONError(err)).WithParam("tools")
		}
		req = tool.SearchRequest
	} else {
		raw := o.Get("search_args")
		if raw == nil || string(raw) == "null" {
			return nil, errorf(http.StatusUnprocessableEntity, "missing_field", "search is true but search_args is missing: give {\"collections\": [ids]} (or use the tool {\"type\": \"search\", \"collection_ids\": [ids]})").WithParam("search_args")
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "search_args: %v", cleanJSONError(err)).WithParam("search_args")
		}
	}
	if req.Query != "" || req.Prompt != "" {
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "the search in a chat uses the last user message: remove query").WithParam("tools")
	}
	return &req, nil
}

func cleanJSONError(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

// lastUserText is the text of the last user message.
func lastUserText(msgs []openai.ChatMessage) (int, string) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		return i, contentText(msgs[i].Content)
	}
	return -1, ""
}

// contentText is a message's text: the string, or its text parts joined.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// answerReserve is the room kept for the answer when the request sets no
// max_tokens.
const answerReserve = 1024

// retrieve runs the search a chat asks for and rewrites the request: the
// search fields removed, the passages put into the last user message. It
// returns the passages used, as search_results.
func (s *Server) retrieve(ctx context.Context, x *exchange, model *routing.Model, req *openai.Request) (*openai.Request, []SearchHit, *guichet.Error) {
	if s.rag == nil {
		return nil, nil, errorf(http.StatusNotFound, "rag_disabled", "search is not enabled on this server: remove the search tool")
	}
	sr, gerr := searchQuery(req.Object)
	if gerr != nil {
		return nil, nil, gerr
	}
	at, question := lastUserText(req.Messages)
	if strings.TrimSpace(question) == "" {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "messages: the search uses the last user message, and there is none with text").WithParam("messages")
	}
	sr.Query = question
	q, gerr := sr.query()
	if gerr != nil {
		return nil, nil, gerr
	}
	x.next("retrieve")
	res, gerr := s.rag.Search(ctx, x.principal, q)
	if gerr != nil {
		return nil, nil, gerr
	}
	hits := res.Hits

	// Keep the prompt within the model's context window: drop the
	// lowest-ranked passages rather than overflow.
	msgs := append([]openai.ChatMessage(nil), req.Messages...)
	if window := model.MaxContext(); window > 0 {
		reserve := req.MaxTokens
		if reserve <= 0 {
			reserve = min(answerReserve, window/4)
		}
		msgs[at].Content = quoteJSON(ragPrompt(question, nil))
		budget := window - reserve - tokens.Chat(msgs, req.Object.Get("tools"))
		used := int64(0)
		for i, h := range hits {
			n := tokens.Uncached(passage(i+1, &h.Chunk)) + 2
			if used+n > budget {
				hits = hits[:i]
				break
			}
			used += n
		}
	}
	msgs[at].Content = quoteJSON(ragPrompt(question, hits))

	// The request without the search fields, with the new messages.
	var o openai.Object
	drop := map[int]bool{}
	for _, i := range searchTools(req.Object) {
		drop[i] = true
	}
	for _, m := range req.Object {
		switch m.Key {
		case "search", "search_args":
			continue
		case "tools":
			var tools []json.RawMessage
			json.Unmarshal(m.Raw, &tools)
			var kept []json.RawMessage
			for i, t := range tools {
				if !drop[i] {
					kept = append(kept, t)
				}
			}
			if len(kept) == 0 {
				continue
			}
			m.Raw, _ = json.Marshal(kept)
		case "tool_choice":
			if len(drop) > 0 && !bytes.Contains(req.Object.Get("tools"), []byte(`"function"`)) {
				continue // no tool is left to choose
			}
		case "messages":
			m.Raw, _ = json.Marshal(msgs)
		}
		o = append(o, m)
	}
	out := *req
	out.Object, out.Messages = o, msgs
	return &out, hitsOut(hits), nil
}

func quoteJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// passage is how one chunk is shown to the model.
func passage(n int, c *guichet.Chunk) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Document %d]", n)
	if name, _ := c.Metadata["document_name"].(string); name != "" {
		fmt.Fprintf(&b, " %s", name)
	}
	if page, ok := c.Metadata["page"].(float64); ok && page > 0 {
		fmt.Fprintf(&b, ", page %s", strconv.FormatFloat(page, 'f', -1, 64))
	}
	b.WriteString("\n")
	b.WriteString(c.Content)
	return b.String()
}

// ragPrompt is the last user message with the passages found.
func ragPrompt(question string, hits []guichet.SearchHit) string {
	var b strings.Builder
	b.WriteString("Answer the question below using only the documents that follow. ")
	b.WriteString("Answer in the language of the question. ")
	b.WriteString("After each statement, cite the documents it comes from as [Document N]. ")
	b.WriteString("If the documents do not hold the answer, say that you did not find it in the documents, and do not make one up.\n\n")
	b.WriteString("Documents:\n")
	if len(hits) == 0 {
		b.WriteString("(no document matched the question)\n")
	}
	for i := range hits {
		b.WriteString(passage(i+1, &hits[i].Chunk))
		b.WriteString("\n\n")
	}
	b.WriteString("Question: ")
	b.WriteString(question)
	return b.String()
}

// searchResultsMember is the search_results member added to the answer.
func searchResultsMember(hits []SearchHit) openai.Member {
	if hits == nil {
		hits = []SearchHit{}
	}
	b, _ := json.Marshal(hits)
	return openai.Member{Key: "search_results", Raw: b}
}
