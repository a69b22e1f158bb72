package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/guichet/guichet"
)

var errorf = guichet.Errorf

// ErrorResponse is every error's body: OpenAI's envelope, plus
// OpenGateLLM's detail string.
type ErrorResponse struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
	Detail string `json:"detail" doc:"The message again, for clients written for OpenGateLLM."`
}

func newErrorBody(e *guichet.Error) ErrorResponse {
	var b ErrorResponse
	b.Error.Message, b.Error.Type, b.Detail = e.Message, e.Type, e.Message
	if e.Param != "" {
		b.Error.Param = &e.Param
	}
	if e.Code != "" {
		b.Error.Code = &e.Code
	}
	return b
}

// writeError answers with e in OpenAI's envelope. Only e's message goes
// out: never a Go error string, type or stack.
func writeError(w http.ResponseWriter, e *guichet.Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	status := e.Status
	if status == 499 { // the client left: nobody reads this
		status = http.StatusBadRequest
	}
	writeJSON(w, status, newErrorBody(e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"message":"internal error","type":"api_error","param":null,"code":null},"detail":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
