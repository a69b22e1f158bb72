package httpapi

import (
	"net/http"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/routing"
)

// Model is the /v1/models object: OpenAI's, plus OpenGateLLM's fields.
type Model struct {
	ID               string        `json:"id"`
	Object           string        `json:"object" enum:"model"`
	Created          int64         `json:"created"`
	OwnedBy          string        `json:"owned_by"`
	Type             string        `json:"type" enum:"text-generation,image-text-to-text,text-embeddings-inference,automatic-speech-recognition,text-classification"`
	Aliases          []string      `json:"aliases"`
	MaxContextLength *int64        `json:"max_context_length" doc:"Smallest context length reported by the providers' probes; null until one answered."`
	Costs            guichet.Costs `json:"costs" doc:"Prices per million tokens."`
}

// ModelList is the /v1/models answer.
type ModelList struct {
	Object string  `json:"object" enum:"list"`
	Data   []Model `json:"data"`
}

func modelObject(m *routing.Model) Model {
	out := Model{ID: m.Name, Object: "model", Created: m.Created, OwnedBy: m.OwnedBy, Type: string(m.Type), Aliases: m.Aliases, Costs: m.Costs}
	if out.Aliases == nil {
		out.Aliases = []string{}
	}
	if c := m.MaxContext(); c > 0 {
		out.MaxContextLength = &c
	}
	return out
}

// handleModels lists only the models the caller's role may use.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	list := ModelList{Object: "list", Data: make([]Model, 0, len(s.models.Models))}
	for _, m := range s.models.Models {
		if visible(p, m) {
			list.Data = append(list.Data, modelObject(m))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// visible reports whether p's role reaches model m at all (a model a role
// has no limit entry for does not exist for it, as in OpenGateLLM).
func visible(p *guichet.Principal, m *routing.Model) bool {
	if p == nil || p.Master {
		return true
	}
	_, ok := p.Role.ModelLimits(m.Name)
	return ok
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	m := s.models.Lookup(r.PathValue("model"))
	if m == nil || !visible(principal(r), m) {
		writeError(w, modelNotFound(r.PathValue("model")))
		return
	}
	writeJSON(w, http.StatusOK, modelObject(m))
}

func modelNotFound(name string) *guichet.Error {
	return errorf(http.StatusNotFound, "model_not_found", "model %q not found: GET /v1/models lists the models and aliases you can use", name).WithParam("model")
}

// resolve finds the model a request names and checks it fits the
// endpoint; the exchange remembers it for settle.
func (s *Server) resolve(x *exchange, name string) (*routing.Model, *guichet.Error) {
	e := x.endpoint
	x.model = name
	m := s.models.Lookup(name)
	if m == nil || !visible(x.principal, m) {
		return nil, modelNotFound(name)
	}
	if !e.Accepts(m.Type) {
		return nil, errorf(http.StatusUnprocessableEntity, "wrong_model_type", "model %q is a %s model; %s needs a model of type %s", name, m.Type, e, e.AcceptedList()).WithParam("model")
	}
	x.model, x.requested = m.Name, m.Name
	return m, nil
}
