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

func TestChunksFollowDocuments(t *testing.T) {
	db := open(t, pgtest.DSN(t))
	t.Cleanup(func() { db.Close() })
	storetest.ChunksFollowDocuments(t, db, db.Index())
}
