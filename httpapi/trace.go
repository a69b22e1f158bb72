package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/upstream"
)

// Traces: with Options.Tracing, each request is a server span (continuing
// the client's traceparent) whose children are the journey's steps —
// authenticate, decode, admit, send (one child per upstream attempt, whose
// context goes to the model server), respond, settle. Attributes name the
// model, provider, user and tokens; never a key or any content.
var tracer = otel.Tracer("github.com/guichet/guichet")

// traced opens the request's server span around the whole handler.
func (s *Server) traced(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
			attribute.String("guichet.request_id", w.Header().Get("X-Request-Id")),
		))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		defer func() {
			if r.Pattern != "" { // set by the mux: "POST /v1/chat/completions"
				span.SetName(r.Pattern)
				span.SetAttributes(attribute.String("http.route", r.Pattern))
			}
			span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
			if sw.status >= 500 {
				span.SetStatus(codes.Error, strconv.Itoa(sw.status))
			}
			span.End()
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status for the span; Unwrap keeps
// http.ResponseController's Flush working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// startSpan starts a child span when tracing is on; otherwise it costs
// nothing and returns a span whose methods do nothing.
func (s *Server) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if !s.tracing {
		return ctx, noSpan
	}
	return tracer.Start(ctx, name)
}

var noSpan = trace.SpanFromContext(context.Background())

// next ends the exchange's current step and starts the step called name;
// the returned context carries it (for the send step, to the upstream).
func (x *exchange) next(name string) context.Context {
	if !x.tracing {
		return x.ctx
	}
	x.step.End()
	ctx, span := tracer.Start(x.ctx, name)
	x.step = span
	return ctx
}

// endSteps ends the last step and describes the request on its span.
func (x *exchange) endSteps(status int, prompt, completion int64) {
	if !x.tracing {
		return
	}
	x.step.End()
	x.step = noSpan
	span := trace.SpanFromContext(x.ctx)
	span.SetAttributes(
		attribute.String("gen_ai.operation.name", genAIOperations[x.endpoint]),
		attribute.String("gen_ai.request.model", x.requested),
		attribute.String("gen_ai.response.model", x.model),
		attribute.String("gen_ai.provider.name", x.provider),
		attribute.Int64("gen_ai.usage.input_tokens", prompt),
		attribute.Int64("gen_ai.usage.output_tokens", completion),
		attribute.Int("guichet.attempts", x.attempts),
		attribute.Int("guichet.status", status),
	)
	if p := x.principal; p != nil && !p.Master {
		span.SetAttributes(attribute.Int64("guichet.user.id", p.User.ID))
	}
}

// startAttempt opens the span of one upstream attempt and puts its context
// in the request's headers, so the model server's own trace joins it.
func (x *exchange) startAttempt(ctx context.Context, p *upstream.Provider, req *http.Request) {
	if !x.tracing {
		return
	}
	x.endAttempt("abandoned")
	ctx, x.attempt = tracer.Start(ctx, "attempt", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.provider.name", p.ID),
		attribute.String("gen_ai.request.model", p.ModelName),
	))
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
}

// endAttempt ends the open attempt span, if any, with its outcome.
func (x *exchange) endAttempt(outcome string) {
	if x.attempt == nil {
		return
	}
	x.attempt.SetAttributes(attribute.String("guichet.outcome", outcome))
	if outcome != "ok" {
		x.attempt.SetStatus(codes.Error, outcome)
	}
	x.attempt.End()
	x.attempt = nil
}

func (x *exchange) attempted(m *routing.Model, p *upstream.Provider, outcome string, took time.Duration) {
	x.endAttempt(outcome)
	x.tries = append(x.tries, try{model: m.Name, provider: p.ID, providerModel: p.ModelName, outcome: outcome, took: took})
}
