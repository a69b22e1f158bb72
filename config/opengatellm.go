package config

import "go.yaml.in/yaml/v3"

// OpenGateLLM's config.yml has three sections: models (read as guichet
// models, its keys are spelled out in Model and Provider), dependencies and
// settings. Only the keys below mean something to guichet; every other key
// of such a file is listed in one start-up warning.

// OGLDependencies is OpenGateLLM's dependencies section.
type OGLDependencies struct {
	Postgres *OGLPostgres `yaml:"postgres"`
	Redis    *OGLRedis    `yaml:"redis"`
}

// OGLPostgres keeps only the URL; the SQLAlchemy engine options are ignored.
type OGLPostgres struct {
	URL string `yaml:"url"`
}

// OGLRedis is either a redis:// URL (0.4) or connection-pool kwargs (0.1).
type OGLRedis struct {
	URL      string `yaml:"url"`
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Password Secret `yaml:"password"`
	DB       int    `yaml:"db"`
}

// OGLSettings is the part of OpenGateLLM's settings guichet uses.
type OGLSettings struct {
	VectorStoreModel string `yaml:"vector_store_model"`
	AuthMasterKey    Secret `yaml:"auth_master_key"`
	// AuthMaxTokenExpirationDays becomes limits.max_key_days.
	AuthMaxTokenExpirationDays *int `yaml:"auth_max_token_expiration_days"`
}

// oglTopLevel are the top-level keys that only an OpenGateLLM file has.
var oglTopLevel = []string{"dependencies", "settings", "playground"}

// isOpenGateLLM detects OpenGateLLM's format from the document's top keys.
func isOpenGateLLM(root *yaml.Node) bool {
	if root.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i < len(root.Content); i += 2 {
		for _, k := range oglTopLevel {
			if root.Content[i].Value == k {
				return true
			}
		}
	}
	return false
}
