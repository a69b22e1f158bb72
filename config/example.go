package config

import (
	_ "embed"
	"os"
)

// Example is the bundled configuration: models served by guichet-sim.
//
//go:embed example.yml
var Example []byte

// ExampleModels are the model names the example expects guichet-sim to serve.
var ExampleModels = []string{"sim-chat", "sim-embeddings", "sim-rerank", "sim-whisper"}

// LoadExample parses the bundled configuration.
func LoadExample() (*Config, error) { return Parse("example.yml", Example, os.LookupEnv) }
