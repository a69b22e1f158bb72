package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration, at a YAML path.
type Problem struct {
	Path    string // e.g. models[0].providers[1].timeout
	Line    int    // 0 when unknown
	Message string
}

func (p Problem) String() string {
	loc := p.Path
	if loc == "" {
		loc = "(top)"
	}
	if p.Line > 0 {
		loc += " (line " + strconv.Itoa(p.Line) + ")"
	}
	return loc + ": " + p.Message
}

// Problems is every problem found in one file.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse reads a configuration from data. lookup resolves ${VAR}.
func Parse(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	cfg := &Config{}
	text, unset := substituteEnv(data, lookup)
	if len(unset) > 0 {
		cfg.Warnings = append(cfg.Warnings, "environment variables not set, replaced by empty strings: "+strings.Join(unset, ", "))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, Problems{{Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if len(doc.Content) == 0 {
		return nil, Problems{{Message: "the file is empty: it needs at least a models: section"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, Problems{{Line: root.Line, Message: "the top level must be a mapping (models:, server:, …)"}}
	}

	cfg.Format = "guichet"
	if isOpenGateLLM(root) {
		cfg.Format = "opengatellm"
	}
	var problems Problems
	var ignored []string
	lines := map[int]string{}
	walkKeys(root, reflect.TypeOf(Config{}), "", lines, func(path string, line int, msg string) {
		if cfg.Format == "opengatellm" {
			ignored = append(ignored, path)
			return
		}
		problems = append(problems, Problem{Path: path, Line: line, Message: msg})
	})
	if len(ignored) > 0 {
		cfg.Warnings = append(cfg.Warnings, "OpenGateLLM settings with no meaning in guichet, ignored: "+strings.Join(ignored, ", "))
	}
	if err := root.Decode(cfg); err != nil {
		// Values of the wrong type: checking the rest would mislead.
		return nil, append(problems, decodeProblems(err, lines)...)
	}
	// Unknown keys and invalid values are reported together.
	problems = append(problems, cfg.normalize()...)
	if len(problems) > 0 {
		return nil, problems
	}
	_ = name
	return cfg, nil
}

// envPattern is OpenGateLLM's ${VAR} / ${VAR:-default} syntax.
var envPattern = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(:-([^}]*))?\}`)

// substituteEnv expands ${VAR} and ${VAR:-default} outside comment lines.
// An empty variable counts as unset, as in OpenGateLLM and the shell.
func substituteEnv(data []byte, lookup func(string) (string, bool)) ([]byte, []string) {
	var unset []string
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		lines[i] = envPattern.ReplaceAllFunc(line, func(m []byte) []byte {
			sub := envPattern.FindSubmatch(m)
			if v, ok := lookup(string(sub[1])); ok && v != "" {
				return yamlSafe(v)
			}
			if len(sub[2]) > 0 {
				return sub[3]
			}
			unset = append(unset, string(sub[1]))
			return nil
		})
	}
	return bytes.Join(lines, []byte("\n")), unset
}

// yamlSafe keeps a substituted value from changing the YAML structure: a
// value with a newline or a leading special character is quoted.
func yamlSafe(v string) []byte {
	if strings.ContainsAny(v, "\n\r") {
		return []byte(strconv.Quote(v))
	}
	return []byte(v)
}

// walkKeys checks every mapping key against the yaml tags of t, reporting
// unknown keys with a hint, and records which path each line holds so that
// decode errors (which only know lines) can name the path.
func walkKeys(n *yaml.Node, t reflect.Type, path string, lines map[int]string, report func(path string, line int, msg string)) {
	lines[n.Line] = path
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(yaml.Node{}) {
		return // a section kept as raw YAML
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || isScalarType(t) {
			return // a type error, reported by Decode
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := join(path, key.Value)
			f, ok := fields[key.Value]
			if !ok {
				report(p, key.Line, unknownKey(key.Value, fields))
				continue
			}
			walkKeys(val, f.Type, p, lines, report)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			walkKeys(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", lines, report)
		}
	}
}

func isScalarType(t reflect.Type) bool {
	return t.Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()) ||
		reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem())
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknownKey says a key is unknown and suggests the closest known one.
func unknownKey(key string, fields map[string]reflect.StructField) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	best, bestDist := "", 1<<30
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist <= 2 || (bestDist <= 4 && len(key) > 8) {
		return fmt.Sprintf("unknown key %q; did you mean %q?", key, best)
	}
	return fmt.Sprintf("unknown key %q; known keys here: %s", key, strings.Join(known, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var linePattern = regexp.MustCompile(`^line (\d+): (.*)$`)

// decodeProblems turns yaml.v3's "line N: cannot unmarshal…" into problems
// that name the YAML path.
func decodeProblems(err error, lines map[int]string) Problems {
	var msgs []string
	if te, ok := err.(*yaml.TypeError); ok {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var out Problems
	for _, m := range msgs {
		p := Problem{Message: m}
		if sub := linePattern.FindStringSubmatch(m); sub != nil {
			p.Line, _ = strconv.Atoi(sub[1])
			p.Path = lines[p.Line]
			p.Message = friendlyTypeError(sub[2])
		}
		out = append(out, p)
	}
	return out
}

var typeErrPattern = regexp.MustCompile("cannot unmarshal !!(\\w+) `([^`]*)` into (.*)")

func friendlyTypeError(m string) string {
	sub := typeErrPattern.FindStringSubmatch(m)
	if sub == nil {
		return m
	}
	want := sub[3]
	switch {
	case strings.HasPrefix(want, "[]"):
		want = "a list"
	case strings.Contains(want, "int"):
		want = "a whole number"
	case strings.Contains(want, "float"):
		want = "a number"
	case strings.Contains(want, "bool"):
		want = "true or false"
	case want == "string" || strings.HasSuffix(want, ".Secret"):
		want = "a string"
	default:
		want = "a mapping"
	}
	return fmt.Sprintf("%q is not %s", sub[2], want)
}
