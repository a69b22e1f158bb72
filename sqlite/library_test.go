package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/guichet/guichet/storetest"
)

func TestLibrary(t *testing.T) {
	storetest.Library(t, func(t *testing.T) storetest.LibraryStore {
		return open(t, filepath.Join(t.TempDir(), "guichet.db"))
	})
}

func TestChunksFollowDocuments(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "guichet.db"))
	t.Cleanup(func() { db.Close() })
	storetest.ChunksFollowDocuments(t, db, db.Index())
}
