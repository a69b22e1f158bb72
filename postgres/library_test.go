package postgres_test

import (
	"testing"

	"github.com/guichet/guichet/postgres/pgtest"
	"github.com/guichet/guichet/storetest"
)

func TestLibrary(t *testing.T) {
	storetest.Library(t, func(t *testing.T) storetest.LibraryStore {
		return open(t, pgtest.DSN(t))
	})
}
