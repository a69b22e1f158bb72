// Package guichet holds the domain types shared by every step of a request's
// journey: the model registry, providers and the usage a request produced.
// Implementations live in one package per step or dependency (config,
// upstream, routing, httpapi, sim).
package guichet

import (
	"fmt"
	"strings"
)

// ModelType says what a model does, and so which endpoints accept it.
type ModelType string

const (
	TextGeneration     ModelType = "text-generation"
	ImageTextToText    ModelType = "image-text-to-text"
	TextEmbeddings     ModelType = "text-embeddings-inference"
	SpeechRecognition  ModelType = "automatic-speech-recognition"
	TextClassification ModelType = "text-classification"
)

// ModelTypes lists every model type in a stable order (for messages).
var ModelTypes = []ModelType{TextGeneration, ImageTextToText, TextEmbeddings, SpeechRecognition, TextClassification}

// Valid reports whether t is a known model type.
func (t ModelType) Valid() bool {
	for _, k := range ModelTypes {
		if t == k {
			return true
		}
	}
	return false
}

// Endpoint names an inference endpoint of the public API.
type Endpoint string

const (
	EndpointChat          Endpoint = "/v1/chat/completions"
	EndpointCompletions   Endpoint = "/v1/completions"
	EndpointEmbeddings    Endpoint = "/v1/embeddings"
	EndpointRerank        Endpoint = "/v1/rerank"
	EndpointTranscription Endpoint = "/v1/audio/transcriptions"
)

// AcceptedTypes is the model types each endpoint serves.
var AcceptedTypes = map[Endpoint][]ModelType{
	EndpointChat:          {TextGeneration, ImageTextToText},
	EndpointCompletions:   {TextGeneration},
	EndpointEmbeddings:    {TextEmbeddings},
	EndpointRerank:        {TextClassification},
	EndpointTranscription: {SpeechRecognition},
}

// Accepts reports whether endpoint e serves models of type t.
func (e Endpoint) Accepts(t ModelType) bool {
	for _, k := range AcceptedTypes[e] {
		if k == t {
			return true
		}
	}
	return false
}

// AcceptedList is the types e accepts, for error messages.
func (e Endpoint) AcceptedList() string {
	names := make([]string, 0, len(AcceptedTypes[e]))
	for _, t := range AcceptedTypes[e] {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// ProviderType is the wire protocol a provider speaks.
type ProviderType string

const (
	ProviderVLLM     ProviderType = "vllm"
	ProviderTEI      ProviderType = "tei"
	ProviderOpenAI   ProviderType = "openai"
	ProviderMistral  ProviderType = "mistral"
	ProviderAlbert   ProviderType = "albert"
	ProviderLlamaCpp ProviderType = "llamacpp"
	ProviderOllama   ProviderType = "ollama"
)

// ProviderTypes lists every provider type in a stable order.
var ProviderTypes = []ProviderType{ProviderVLLM, ProviderTEI, ProviderOpenAI, ProviderMistral, ProviderAlbert, ProviderLlamaCpp, ProviderOllama}

// Valid reports whether t is a known provider type.
func (t ProviderType) Valid() bool {
	for _, k := range ProviderTypes {
		if t == k {
			return true
		}
	}
	return false
}

// Costs are prices per million tokens, in the operator's currency.
type Costs struct {
	PromptTokens     float64 `json:"prompt_tokens"`
	CompletionTokens float64 `json:"completion_tokens"`
}

// Carbon holds what the carbon estimate of a model needs.
type Carbon struct {
	TotalParams  float64 // billions
	ActiveParams float64 // billions
	Zone         string  // ISO 3166-1 alpha-3, or WOR
}

// Error is a client-facing failure: an HTTP status and a message that says
// what to fix. Nothing else of an internal error ever reaches a client.
type Error struct {
	Status  int
	Type    string // OpenAI error type, e.g. invalid_request_error
	Code    string // machine-readable code, e.g. model_not_found
	Param   string // the offending request field, if any
	Message string
	// RetryAfter, in seconds, tells an overloaded client when to come back.
	RetryAfter int
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Type: errorType(status), Message: fmt.Sprintf(format, args...)}
}

// WithParam names the offending field.
func (e *Error) WithParam(p string) *Error { e.Param = p; return e }

func errorType(status int) string {
	switch {
	case status == 401 || status == 403:
		return "authentication_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_error"
	case status >= 500:
		return "api_error"
	default:
		return "invalid_request_error"
	}
}
