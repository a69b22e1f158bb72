// Command guichet is the sovereign AI gateway: an OpenAI-compatible API in
// front of a pool of self-hosted models.
//
//	guichet serve [--config FILE] [--listen ADDR] [--data DIR] [--dev]
//	guichet demo                   the API in front of the bundled simulator
//	guichet admin COMMAND          roles, users and keys, against the store
//	guichet ingest PATH... --collection NAME
//	                               upload files and folders into a RAG collection
//	guichet config check FILE      validate a configuration, list every problem
//	guichet version
package main

import (
	"fmt"
	"os"

	"github.com/guichet/guichet/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], nil)
	case "admin":
		return admin(args[1:], os.Stdout)
	case "demo":
		return demo(args[1:])
	case "ingest":
		return ingest(args[1:])
	case "config":
		if len(args) == 3 && args[1] == "check" {
			return checkConfig(args[2])
		}
		fmt.Fprintln(os.Stderr, "usage: guichet config check FILE")
		return 2
	case "version", "--version", "-v":
		fmt.Println("guichet", version.Version)
		return 0
	case "help", "--help", "-h":
		usage()
		return 0
	default:
		fmt.Fprintf(os.Stderr, "guichet: unknown command %q\n\n", args[0])
		usage()
		return 2
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `guichet: a sovereign AI gateway (OpenAI-compatible API in front of self-hosted models)

Commands:
  serve [--config FILE] [--listen ADDR] [--data DIR] [--dev] [--log-format json]
        serve the API (default: the bundled example config, 127.0.0.1:8080, ./data)
  demo  serve the API in front of guichet-sim, the bundled upstream simulator
  admin [--config FILE] [--data DIR] COMMAND
        manage roles, users and API keys in the store (guichet admin init
        creates the first admin and its key); see guichet admin --help
  ingest PATH... --collection NAME [--url URL] [--concurrency N] [--dry-run]
        upload files and folders into a RAG collection of a running guichet,
        with your API key (env GUICHET_API_KEY); see guichet ingest --help
  config check FILE
        validate a configuration file and print every problem with its YAML path
  version

Environment:
  GUICHET_MASTER_KEY  the admin API key (32+ characters; required unless --dev)
  GUICHET_LISTEN      listen address (overridden by --listen)
  GUICHET_DATA        data directory (overridden by --data)
  GUICHET_URL         guichet's address, for ingest (default http://127.0.0.1:8080)
  GUICHET_API_KEY     your API key, for ingest
`)
}
