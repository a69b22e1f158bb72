package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet"
)

// LibraryStore keeps collections and documents, and the users who own
// the collections.
type LibraryStore interface {
	guichet.Library
	guichet.IdentityStore
}

// Library runs the guichet.Library conformance suite. open must return a
// new, empty store on each call (subtests run in parallel); the suite
// closes it.
//
// What the suite pins down, beyond the comments of guichet.Library:
//
//   - Create methods set ID, Created and Updated (equal); times are in
//     UTC, to the microsecond, and read back equal. Update methods set
//     Updated and leave Created alone. IDs are never reused, since
//     chunks in the index name their document and collection without a
//     foreign key.
//   - A collection's owner must be an existing user (ErrNotFound
//     otherwise); UpdateCollection keeps the owner. Deleting the owner
//     deletes their collections and documents. Visibility must be
//     private or public ("" is an error, not a default).
//   - Collection and every collection listed carry Documents, the number
//     of documents they hold whatever their status.
//   - A document's Status must be one of the four statuses ("" is an
//     error). UpdateDocument keeps CollectionID and Hash. The zero Hash
//     is no content: any number of documents of a collection may have it
//     and DocumentByHash never finds it. The same hash in two collections
//     is no conflict, and a deleted document frees its hash.
//   - Metadata comes back as JSON decodes it (numbers are float64); a nil
//     and an empty Metadata are the same.
//   - Filters combine with AND. ReaderID keeps what the user owns plus
//     what is public (a user with nothing, or an unknown one, reads the
//     public collections); CollectionID does not widen it. Name matches a
//     substring of the name, case-insensitively beyond ASCII ("école"
//     finds "ÉCOLE"), with no wildcard ("%" and "_" are plain
//     characters).
//   - Pages order collections and documents by id, name (bytewise),
//     created or updated, ties by id; another OrderBy is an error.
//   - FailUnfinished sets Updated on the documents it fails, and leaves
//     ready and failed ones alone.
//   - Library changes leave the identity Version alone: ingestion updates
//     documents all the time, and replicas drop their cached identities
//     when it moves.
func Library(t *testing.T, open func(t *testing.T) LibraryStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s LibraryStore)
	}{
		{"Collections", testCollections},
		{"CollectionFilter", testCollectionFilter},
		{"CollectionPages", testCollectionPages},
		{"Documents", testDocuments},
		{"DocumentHash", testDocumentHash},
		{"DocumentFilter", testDocumentFilter},
		{"DocumentPages", testDocumentPages},
		{"DeleteOwner", testDeleteOwner},
		{"FailUnfinished", testFailUnfinished},
		{"InvalidValues", testLibraryInvalidValues},
		{"IDsNotReused", testLibraryIDsNotReused},
		{"IdentityVersion", testLibraryIdentityVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.run(t, s)
		})
	}
}

func testCollections(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	alice := mkOwner(t, s, "alice@example.com")
	bob := mkOwner(t, s, "bob@example.com")

	before := time.Now()
	c := &guichet.Collection{Name: "Règlement intérieur ☃", Description: "Ce qui s'applique à tous", OwnerID: alice.ID, Visibility: guichet.Private}
	must(t, s.CreateCollection(ctx, c))
	checkCreated(t, "collection", c.ID, c.Created, c.Updated, before)
	got, err := s.Collection(ctx, c.ID)
	must(t, err)
	same(t, "Collection after create", got, c)
	pub := mkCollection(t, s, bob.ID, "public", guichet.Public)
	got, err = s.Collection(ctx, pub.ID)
	must(t, err)
	same(t, "public Collection after create", got, pub)

	isNotFound(t, "CreateCollection for a missing owner",
		s.CreateCollection(ctx, &guichet.Collection{Name: "x", OwnerID: missingID, Visibility: guichet.Private}))

	// Documents counts every document, whatever its status.
	a := mkDocument(t, s, c.ID, "a.pdf", guichet.DocumentQueued, hashOf("a"))
	mkDocument(t, s, c.ID, "b.pdf", guichet.DocumentReady, [32]byte{})
	mkDocument(t, s, c.ID, "c.pdf", guichet.DocumentFailed, [32]byte{})
	mkDocument(t, s, pub.ID, "d.pdf", guichet.DocumentProcessing, hashOf("d"))
	c.Documents, pub.Documents = 3, 1
	got, err = s.Collection(ctx, c.ID)
	must(t, err)
	same(t, "Collection with documents", got, c)
	list, err := s.Collections(ctx, guichet.CollectionFilter{}, guichet.Page{})
	must(t, err)
	same(t, "Collections", list, []*guichet.Collection{c, pub})

	// UpdateCollection changes name, description and visibility, not the
	// owner.
	time.Sleep(2 * time.Millisecond) // so Updated moves past Created
	update := *c
	update.Name, update.Description, update.Visibility = "RI", "", guichet.Public
	update.OwnerID = bob.ID // must not be written
	must(t, s.UpdateCollection(ctx, &update))
	if !update.Updated.After(c.Created) {
		t.Errorf("UpdateCollection set Updated %v, not after Created %v", update.Updated, c.Created)
	}
	want := *c
	want.Name, want.Description, want.Visibility, want.Updated = "RI", "", guichet.Public, update.Updated
	got, err = s.Collection(ctx, c.ID)
	must(t, err)
	same(t, "Collection after update", got, &want)

	_, err = s.Collection(ctx, missingID)
	isNotFound(t, "Collection(missing)", err)
	isNotFound(t, "UpdateCollection(missing)",
		s.UpdateCollection(ctx, &guichet.Collection{ID: missingID, Name: "x", Visibility: guichet.Private}))
	isNotFound(t, "DeleteCollection(missing)", s.DeleteCollection(ctx, missingID))

	// DeleteCollection deletes its documents, and only them.
	must(t, s.DeleteCollection(ctx, c.ID))
	_, err = s.Collection(ctx, c.ID)
	isNotFound(t, "Collection after delete", err)
	_, err = s.Document(ctx, a.ID)
	isNotFound(t, "Document of a deleted collection", err)
	_, err = s.DocumentByHash(ctx, c.ID, a.Hash)
	isNotFound(t, "DocumentByHash in a deleted collection", err)
	docs, err := s.Documents(ctx, guichet.DocumentFilter{}, guichet.Page{})
	must(t, err)
	if len(docs) != 1 || docs[0].CollectionID != pub.ID {
		t.Errorf("Documents after deleting a collection: got %s, want the one of the other collection", dump(docs))
	}
	list, err = s.Collections(ctx, guichet.CollectionFilter{}, guichet.Page{})
	must(t, err)
	same(t, "Collections after delete", list, []*guichet.Collection{pub})
	isNotFound(t, "DeleteCollection twice", s.DeleteCollection(ctx, c.ID))
}

func testCollectionFilter(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	alice := mkOwner(t, s, "alice@example.com")
	bob := mkOwner(t, s, "bob@example.com")
	carol := mkOwner(t, s, "carol@example.com")
	nobody := mkOwner(t, s, "nobody@example.com") // owns nothing
	aPriv := mkCollection(t, s, alice.ID, "École primaire", guichet.Private)
	aPub := mkCollection(t, s, alice.ID, "Code du travail", guichet.Public)
	bPriv := mkCollection(t, s, bob.ID, "ÉCOLE maternelle", guichet.Private)
	bPub := mkCollection(t, s, bob.ID, "Conventions", guichet.Public)
	cPriv := mkCollection(t, s, carol.ID, "100% bio", guichet.Private)
	// Listed collections carry their count too.
	mkDocument(t, s, aPub.ID, "code.pdf", guichet.DocumentReady, hashOf("code"))
	mkDocument(t, s, bPriv.ID, "menu.pdf", guichet.DocumentQueued, hashOf("menu"))
	aPub.Documents, bPriv.Documents = 1, 1

	for _, tc := range []struct {
		filter guichet.CollectionFilter
		want   []*guichet.Collection
	}{
		{guichet.CollectionFilter{}, []*guichet.Collection{aPriv, aPub, bPriv, bPub, cPriv}},
		{guichet.CollectionFilter{ReaderID: alice.ID}, []*guichet.Collection{aPriv, aPub, bPub}},
		{guichet.CollectionFilter{ReaderID: bob.ID}, []*guichet.Collection{aPub, bPriv, bPub}},
		{guichet.CollectionFilter{ReaderID: nobody.ID}, []*guichet.Collection{aPub, bPub}},
		{guichet.CollectionFilter{ReaderID: missingID}, []*guichet.Collection{aPub, bPub}},
		{guichet.CollectionFilter{Visibility: guichet.Private}, []*guichet.Collection{aPriv, bPriv, cPriv}},
		{guichet.CollectionFilter{Visibility: guichet.Public}, []*guichet.Collection{aPub, bPub}},
		{guichet.CollectionFilter{ReaderID: alice.ID, Visibility: guichet.Private}, []*guichet.Collection{aPriv}},
		{guichet.CollectionFilter{Name: "école"}, []*guichet.Collection{aPriv, bPriv}},
		{guichet.CollectionFilter{Name: "ÉCOLE"}, []*guichet.Collection{aPriv, bPriv}},
		{guichet.CollectionFilter{Name: "LE MAT"}, []*guichet.Collection{bPriv}},
		{guichet.CollectionFilter{Name: "TRAVAIL"}, []*guichet.Collection{aPub}},
		{guichet.CollectionFilter{Name: "%"}, []*guichet.Collection{cPriv}},
		{guichet.CollectionFilter{Name: "_"}, nil},
		{guichet.CollectionFilter{Name: "école", ReaderID: bob.ID}, []*guichet.Collection{bPriv}},
		{guichet.CollectionFilter{Name: "bio", ReaderID: alice.ID}, nil},
		{guichet.CollectionFilter{Name: "nothing like it"}, nil},
	} {
		got, err := s.Collections(ctx, tc.filter, guichet.Page{Limit: 100})
		must(t, err)
		if tc.want == nil {
			tc.want = []*guichet.Collection{}
		}
		same(t, fmt.Sprintf("Collections, filter %+v", tc.filter), nonNil(got), tc.want)
	}
	// Filter and page combine; names order bytewise ("É" after ASCII).
	got, err := s.Collections(ctx, guichet.CollectionFilter{ReaderID: bob.ID}, guichet.Page{OrderBy: "name", Limit: 2})
	must(t, err)
	same(t, "Collections bob reads, the first two by name", got, []*guichet.Collection{aPub, bPub})
}

func testCollectionPages(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	owner := mkOwner(t, s, "owner@example.com")
	testPaging(t, lister{
		name:   "Collections",
		create: func(name, _ string) int64 { return mkCollection(t, s, owner.ID, name, guichet.Private).ID },
		touch: func(id int64) {
			c, err := s.Collection(ctx, id)
			must(t, err)
			must(t, s.UpdateCollection(ctx, c))
		},
		list: func(p guichet.Page) ([]int64, error) { return ids(s.Collections(ctx, guichet.CollectionFilter{}, p)) },
	})
}

func testDocuments(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	owner := mkOwner(t, s, "owner@example.com")
	coll := mkCollection(t, s, owner.ID, "docs", guichet.Private)
	other := mkCollection(t, s, owner.ID, "other", guichet.Private)

	before := time.Now()
	d := &guichet.Document{
		CollectionID: coll.ID, Name: "Contrat de travail – Zoé.pdf", Status: guichet.DocumentQueued,
		Hash: hashOf("contrat"), Parser: "pdftotext", Pages: 12, Chunks: 1 << 40,
		Metadata: map[string]any{
			"author": "Zoé", "year": 2024.0, "ratio": 0.25, "draft": false, "reviewer": nil,
			"tags": []any{"rh", "contrat"}, "source": map[string]any{"kind": "upload", "size": 12345.0},
		},
	}
	must(t, s.CreateDocument(ctx, d))
	checkCreated(t, "document", d.ID, d.Created, d.Updated, before)
	got, err := s.Document(ctx, d.ID)
	must(t, err)
	sameDocument(t, "Document after create", got, d)

	// Numbers come back as JSON decodes them.
	counted := &guichet.Document{CollectionID: coll.ID, Name: "n", Status: guichet.DocumentReady, Metadata: map[string]any{"page": 3}}
	must(t, s.CreateDocument(ctx, counted))
	got, err = s.Document(ctx, counted.ID)
	must(t, err)
	if page, ok := got.Metadata["page"].(float64); !ok || page != 3 {
		t.Errorf("Metadata page 3 (an int) read back as %#v, want float64(3)", got.Metadata["page"])
	}
	// Empty metadata is none.
	bare := &guichet.Document{CollectionID: coll.ID, Name: "bare", Status: guichet.DocumentReady, Metadata: map[string]any{}}
	must(t, s.CreateDocument(ctx, bare))
	got, err = s.Document(ctx, bare.ID)
	must(t, err)
	sameDocument(t, "Document with empty metadata", got, bare)

	isNotFound(t, "CreateDocument in a missing collection",
		s.CreateDocument(ctx, &guichet.Document{CollectionID: missingID, Name: "x", Status: guichet.DocumentQueued}))

	// UpdateDocument saves what ingestion finds, not the collection or the
	// hash.
	time.Sleep(2 * time.Millisecond) // so Updated moves past Created
	update := *d
	update.Name, update.Status, update.Error = "contrat.pdf", guichet.DocumentFailed, "pdftotext: exit status 1"
	update.Parser, update.Pages, update.Chunks = "pdfium", 13, 42
	update.Metadata = map[string]any{"author": "Zoé Martin"}
	update.CollectionID, update.Hash = other.ID, hashOf("other") // must not be written
	must(t, s.UpdateDocument(ctx, &update))
	if !update.Updated.After(d.Created) {
		t.Errorf("UpdateDocument set Updated %v, not after Created %v", update.Updated, d.Created)
	}
	want := update
	want.CollectionID, want.Hash = d.CollectionID, d.Hash
	got, err = s.Document(ctx, d.ID)
	must(t, err)
	sameDocument(t, "Document after update", got, &want)
	got, err = s.DocumentByHash(ctx, coll.ID, d.Hash)
	must(t, err)
	sameDocument(t, "DocumentByHash after update", got, &want)

	want.Metadata, want.Error, want.Status = nil, "", guichet.DocumentReady
	must(t, s.UpdateDocument(ctx, &want))
	got, err = s.Document(ctx, d.ID)
	must(t, err)
	sameDocument(t, "Document after clearing metadata and error", got, &want)

	_, err = s.Document(ctx, missingID)
	isNotFound(t, "Document(missing)", err)
	isNotFound(t, "UpdateDocument(missing)",
		s.UpdateDocument(ctx, &guichet.Document{ID: missingID, Name: "x", Status: guichet.DocumentReady}))
	isNotFound(t, "DeleteDocument(missing)", s.DeleteDocument(ctx, missingID))

	must(t, s.DeleteDocument(ctx, d.ID))
	_, err = s.Document(ctx, d.ID)
	isNotFound(t, "Document after delete", err)
	isNotFound(t, "DeleteDocument twice", s.DeleteDocument(ctx, d.ID))
	c, err := s.Collection(ctx, coll.ID)
	must(t, err)
	if c.Documents != 2 {
		t.Errorf("Collection.Documents after deleting one of 3: %d, want 2", c.Documents)
	}
}

func testDocumentHash(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	owner := mkOwner(t, s, "owner@example.com")
	c1 := mkCollection(t, s, owner.ID, "one", guichet.Private)
	c2 := mkCollection(t, s, owner.ID, "two", guichet.Private)
	h := hashOf("report")

	a := mkDocument(t, s, c1.ID, "report.pdf", guichet.DocumentReady, h)
	isConflict(t, "CreateDocument with a hash the collection holds",
		s.CreateDocument(ctx, &guichet.Document{CollectionID: c1.ID, Name: "copy.pdf", Status: guichet.DocumentQueued, Hash: h}))
	b := mkDocument(t, s, c2.ID, "report.pdf", guichet.DocumentQueued, h) // another collection may hold it
	got, err := s.DocumentByHash(ctx, c1.ID, h)
	must(t, err)
	sameDocument(t, "DocumentByHash(c1)", got, a)
	got, err = s.DocumentByHash(ctx, c2.ID, h)
	must(t, err)
	sameDocument(t, "DocumentByHash(c2)", got, b)
	_, err = s.DocumentByHash(ctx, c1.ID, hashOf("unknown"))
	isNotFound(t, "DocumentByHash(unknown hash)", err)
	_, err = s.DocumentByHash(ctx, missingID, h)
	isNotFound(t, "DocumentByHash(missing collection)", err)

	// Documents without content repeat, and are not found by hash.
	mkDocument(t, s, c1.ID, "empty 1", guichet.DocumentFailed, [32]byte{})
	mkDocument(t, s, c1.ID, "empty 2", guichet.DocumentFailed, [32]byte{})
	_, err = s.DocumentByHash(ctx, c1.ID, [32]byte{})
	isNotFound(t, "DocumentByHash(zero hash)", err)
	c, err := s.Collection(ctx, c1.ID)
	must(t, err)
	if c.Documents != 3 {
		t.Errorf("Collection.Documents: %d, want 3 (the failed copy is not one)", c.Documents)
	}

	// A deleted document frees its hash.
	must(t, s.DeleteDocument(ctx, a.ID))
	_, err = s.DocumentByHash(ctx, c1.ID, h)
	isNotFound(t, "DocumentByHash after delete", err)
	again := mkDocument(t, s, c1.ID, "report again.pdf", guichet.DocumentQueued, h)
	got, err = s.DocumentByHash(ctx, c1.ID, h)
	must(t, err)
	sameDocument(t, "DocumentByHash of a content uploaded again", got, again)

	// The same content uploaded several times at once is stored once.
	race := hashOf("race")
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.CreateDocument(ctx, &guichet.Document{
				CollectionID: c2.ID, Name: fmt.Sprintf("upload %d", i), Status: guichet.DocumentQueued, Hash: race,
			})
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, guichet.ErrConflict):
			t.Errorf("concurrent CreateDocument of one content: %v, want nil or ErrConflict", err)
		}
	}
	if created != 1 {
		t.Errorf("concurrent CreateDocument of one content: %d created, want 1", created)
	}
}

func testDocumentFilter(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	alice := mkOwner(t, s, "alice@example.com")
	bob := mkOwner(t, s, "bob@example.com")
	aPriv := mkCollection(t, s, alice.ID, "alice private", guichet.Private)
	aPub := mkCollection(t, s, alice.ID, "alice public", guichet.Public)
	bPriv := mkCollection(t, s, bob.ID, "bob private", guichet.Private)
	d1 := mkDocument(t, s, aPriv.ID, "Contrat.pdf", guichet.DocumentReady, hashOf("1"))
	d2 := mkDocument(t, s, aPub.ID, "contrat-type.docx", guichet.DocumentQueued, hashOf("2"))
	d3 := mkDocument(t, s, aPub.ID, "Guide.html", guichet.DocumentReady, hashOf("3"))
	d4 := mkDocument(t, s, bPriv.ID, "CONTRAT SIGNÉ.pdf", guichet.DocumentFailed, hashOf("4"))
	d5 := mkDocument(t, s, bPriv.ID, "notes_100%.txt", guichet.DocumentProcessing, [32]byte{})

	for _, tc := range []struct {
		filter guichet.DocumentFilter
		want   []*guichet.Document
	}{
		{guichet.DocumentFilter{}, []*guichet.Document{d1, d2, d3, d4, d5}},
		{guichet.DocumentFilter{ReaderID: alice.ID}, []*guichet.Document{d1, d2, d3}},
		{guichet.DocumentFilter{ReaderID: bob.ID}, []*guichet.Document{d2, d3, d4, d5}},
		{guichet.DocumentFilter{ReaderID: missingID}, []*guichet.Document{d2, d3}},
		{guichet.DocumentFilter{CollectionID: aPub.ID}, []*guichet.Document{d2, d3}},
		{guichet.DocumentFilter{CollectionID: aPub.ID, ReaderID: bob.ID}, []*guichet.Document{d2, d3}},
		{guichet.DocumentFilter{CollectionID: aPriv.ID, ReaderID: bob.ID}, nil},
		{guichet.DocumentFilter{CollectionID: missingID}, nil},
		{guichet.DocumentFilter{Name: "contrat"}, []*guichet.Document{d1, d2, d4}},
		{guichet.DocumentFilter{Name: "signé"}, []*guichet.Document{d4}},
		{guichet.DocumentFilter{Name: "%"}, []*guichet.Document{d5}},
		{guichet.DocumentFilter{Name: "s_1"}, []*guichet.Document{d5}},
		{guichet.DocumentFilter{Name: "_"}, []*guichet.Document{d5}},
		{guichet.DocumentFilter{Status: guichet.DocumentReady}, []*guichet.Document{d1, d3}},
		{guichet.DocumentFilter{Status: guichet.DocumentProcessing}, []*guichet.Document{d5}},
		{guichet.DocumentFilter{Status: guichet.DocumentFailed, ReaderID: alice.ID}, nil},
		{guichet.DocumentFilter{Status: guichet.DocumentQueued, Name: "CONTRAT"}, []*guichet.Document{d2}},
	} {
		got, err := s.Documents(ctx, tc.filter, guichet.Page{Limit: 100})
		must(t, err)
		sameDocuments(t, fmt.Sprintf("Documents, filter %+v", tc.filter), got, tc.want)
	}
	// Filter and page combine; names order bytewise (upper case first).
	got, err := s.Documents(ctx, guichet.DocumentFilter{ReaderID: bob.ID}, guichet.Page{OrderBy: "name", Desc: true, Limit: 2})
	must(t, err)
	sameDocuments(t, "Documents bob reads, the last two by name", got, []*guichet.Document{d5, d2})
}

func testDocumentPages(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	coll := mkCollection(t, s, mkOwner(t, s, "owner@example.com").ID, "docs", guichet.Private)
	testPaging(t, lister{
		name: "Documents",
		create: func(name, _ string) int64 {
			return mkDocument(t, s, coll.ID, name, guichet.DocumentQueued, hashOf(name)).ID
		},
		touch: func(id int64) {
			d, err := s.Document(ctx, id)
			must(t, err)
			d.Status = guichet.DocumentProcessing
			must(t, s.UpdateDocument(ctx, d))
		},
		list: func(p guichet.Page) ([]int64, error) {
			return ids(s.Documents(ctx, guichet.DocumentFilter{CollectionID: coll.ID}, p))
		},
	})
}

func testDeleteOwner(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	alice := mkOwner(t, s, "alice@example.com")
	bob := mkOwner(t, s, "bob@example.com")
	aColl := mkCollection(t, s, alice.ID, "alice", guichet.Public)
	aDoc := mkDocument(t, s, aColl.ID, "a.pdf", guichet.DocumentReady, hashOf("a"))
	bColl := mkCollection(t, s, bob.ID, "bob", guichet.Private)
	bDoc := mkDocument(t, s, bColl.ID, "b.pdf", guichet.DocumentReady, hashOf("b"))
	bColl.Documents = 1

	must(t, s.DeleteUser(ctx, alice.ID))
	_, err := s.Collection(ctx, aColl.ID)
	isNotFound(t, "Collection of a deleted user", err)
	_, err = s.Document(ctx, aDoc.ID)
	isNotFound(t, "Document of a deleted user", err)
	colls, err := s.Collections(ctx, guichet.CollectionFilter{}, guichet.Page{})
	must(t, err)
	same(t, "Collections after deleting a user", colls, []*guichet.Collection{bColl})
	docs, err := s.Documents(ctx, guichet.DocumentFilter{}, guichet.Page{})
	must(t, err)
	sameDocuments(t, "Documents after deleting a user", docs, []*guichet.Document{bDoc})
}

func testFailUnfinished(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	owner := mkOwner(t, s, "owner@example.com")
	c1 := mkCollection(t, s, owner.ID, "one", guichet.Private)
	c2 := mkCollection(t, s, mkOwner(t, s, "other@example.com").ID, "two", guichet.Public)
	queued := mkDocument(t, s, c1.ID, "queued", guichet.DocumentQueued, hashOf("q"))
	processing := mkDocument(t, s, c2.ID, "processing", guichet.DocumentProcessing, hashOf("p"))
	ready := mkDocument(t, s, c1.ID, "ready", guichet.DocumentReady, hashOf("r"))
	failed := &guichet.Document{CollectionID: c2.ID, Name: "failed", Status: guichet.DocumentFailed, Error: "not a PDF"}
	must(t, s.CreateDocument(ctx, failed))

	time.Sleep(2 * time.Millisecond) // so Updated moves past Created
	cut := time.Now()
	time.Sleep(2 * time.Millisecond)
	late := mkDocument(t, s, c1.ID, "late", guichet.DocumentQueued, hashOf("l")) // queued after the cut
	const reason = "interrupted by a restart"
	n, err := s.FailUnfinished(ctx, reason, cut)
	must(t, err)
	if n != 2 {
		t.Errorf("FailUnfinished: %d, want 2", n)
	}
	for _, d := range []*guichet.Document{queued, processing} {
		got, err := s.Document(ctx, d.ID)
		must(t, err)
		if got.Status != guichet.DocumentFailed || got.Error != reason {
			t.Errorf("%s document after FailUnfinished: status %q, error %q; want failed, %q", d.Name, got.Status, got.Error, reason)
		}
		if !got.Updated.After(d.Created) {
			t.Errorf("%s document after FailUnfinished: Updated %v, not after Created %v", d.Name, got.Updated, d.Created)
		}
	}
	for _, d := range []*guichet.Document{ready, failed, late} {
		got, err := s.Document(ctx, d.ID)
		must(t, err)
		sameDocument(t, d.Name+" document after FailUnfinished", got, d)
	}
	n, err = s.FailUnfinished(ctx, reason, cut)
	must(t, err)
	if n != 0 {
		t.Errorf("FailUnfinished again: %d, want 0", n)
	}
}

func testLibraryInvalidValues(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	owner := mkOwner(t, s, "owner@example.com")
	for _, v := range []guichet.Visibility{"", "everyone"} {
		if err := s.CreateCollection(ctx, &guichet.Collection{Name: "x", OwnerID: owner.ID, Visibility: v}); err == nil {
			t.Errorf("CreateCollection with visibility %q: no error", v)
		}
	}
	c := mkCollection(t, s, owner.ID, "c", guichet.Private)
	bad := *c
	bad.Visibility = "everyone"
	if err := s.UpdateCollection(ctx, &bad); err == nil {
		t.Error("UpdateCollection to visibility \"everyone\": no error")
	}
	colls, err := s.Collections(ctx, guichet.CollectionFilter{}, guichet.Page{})
	must(t, err)
	same(t, "Collections after invalid writes", colls, []*guichet.Collection{c})

	for _, status := range []guichet.DocumentStatus{"", "done"} {
		if err := s.CreateDocument(ctx, &guichet.Document{CollectionID: c.ID, Name: "x", Status: status}); err == nil {
			t.Errorf("CreateDocument with status %q: no error", status)
		}
	}
	d := mkDocument(t, s, c.ID, "d", guichet.DocumentQueued, hashOf("d"))
	badDoc := *d
	badDoc.Status = "done"
	if err := s.UpdateDocument(ctx, &badDoc); err == nil {
		t.Error("UpdateDocument to status \"done\": no error")
	}
	docs, err := s.Documents(ctx, guichet.DocumentFilter{}, guichet.Page{})
	must(t, err)
	sameDocuments(t, "Documents after invalid writes", docs, []*guichet.Document{d})
}

// testLibraryIDsNotReused: chunks name their document and collection
// without a foreign key, so a new one must never take an old id.
func testLibraryIDsNotReused(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	owner := mkOwner(t, s, "owner@example.com")
	c := mkCollection(t, s, owner.ID, "c", guichet.Private)
	d := mkDocument(t, s, c.ID, "d", guichet.DocumentReady, hashOf("d"))
	must(t, s.DeleteDocument(ctx, d.ID))
	d2 := mkDocument(t, s, c.ID, "d", guichet.DocumentReady, hashOf("d"))
	if d2.ID <= d.ID {
		t.Errorf("document id %d reused or lowered after deleting %d", d2.ID, d.ID)
	}
	must(t, s.DeleteCollection(ctx, c.ID))
	c2 := mkCollection(t, s, owner.ID, "c", guichet.Private)
	if c2.ID <= c.ID {
		t.Errorf("collection id %d reused or lowered after deleting %d", c2.ID, c.ID)
	}
	if d3 := mkDocument(t, s, c2.ID, "d", guichet.DocumentReady, hashOf("d")); d3.ID <= d2.ID {
		t.Errorf("document id %d reused or lowered after deleting %d", d3.ID, d2.ID)
	}
}

func testLibraryIdentityVersion(t *testing.T, s LibraryStore) {
	ctx := t.Context()
	owner := mkOwner(t, s, "owner@example.com")
	before := version(t, s)
	c := mkCollection(t, s, owner.ID, "c", guichet.Private)
	c.Visibility = guichet.Public
	must(t, s.UpdateCollection(ctx, c))
	d := mkDocument(t, s, c.ID, "d", guichet.DocumentQueued, hashOf("d"))
	d.Status = guichet.DocumentProcessing
	must(t, s.UpdateDocument(ctx, d))
	_, err := s.FailUnfinished(ctx, "restart", time.Now())
	must(t, err)
	must(t, s.DeleteDocument(ctx, d.ID))
	must(t, s.DeleteCollection(ctx, c.ID))
	if after := version(t, s); after != before {
		t.Errorf("library changes moved the identity Version from %d to %d", before, after)
	}
}

// Helpers

// mkOwner creates a user, with a role of their own.
func mkOwner(t *testing.T, s guichet.IdentityStore, email string) *guichet.User {
	t.Helper()
	return mkUser(t, s, email, mkRole(t, s, "role of "+email).ID, 0)
}

func mkCollection(t *testing.T, s guichet.Library, ownerID int64, name string, v guichet.Visibility) *guichet.Collection {
	t.Helper()
	c := &guichet.Collection{Name: name, Description: "about " + name, OwnerID: ownerID, Visibility: v}
	must(t, s.CreateCollection(t.Context(), c))
	return c
}

func mkDocument(t *testing.T, s guichet.Library, collectionID int64, name string, status guichet.DocumentStatus, hash [32]byte) *guichet.Document {
	t.Helper()
	d := &guichet.Document{
		CollectionID: collectionID, Name: name, Status: status, Hash: hash,
		Parser: "html", Pages: 1, Chunks: 3, Metadata: map[string]any{"name": name},
	}
	must(t, s.CreateDocument(t.Context(), d))
	return d
}

func hashOf(content string) [32]byte { return sha256.Sum256([]byte(content)) }

// normDocument makes an empty Metadata nil, as stores may return either.
func normDocument(d *guichet.Document) *guichet.Document {
	if d == nil {
		return nil
	}
	c := *d
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	return &c
}

func sameDocument(t *testing.T, what string, got, want *guichet.Document) {
	t.Helper()
	same(t, what, normDocument(got), normDocument(want))
}

// sameDocuments compares lists of documents; nil and empty lists are the
// same.
func sameDocuments(t *testing.T, what string, got, want []*guichet.Document) {
	t.Helper()
	norm := func(docs []*guichet.Document) []*guichet.Document {
		out := []*guichet.Document{}
		for _, d := range docs {
			out = append(out, normDocument(d))
		}
		return out
	}
	same(t, what, norm(got), norm(want))
}

// ChunksFollowDocuments checks that a store's Index loses a document's
// chunks whoever deletes the document: the Library, its collection's
// deletion, or its owner's deletion (cascades included). Chunks of other
// documents stay.
func ChunksFollowDocuments(t *testing.T, s LibraryStore, index guichet.Index) {
	ctx := t.Context()
	alice := mkOwner(t, s, "alice@example.com")
	bob := mkOwner(t, s, "bob@example.com")
	aColl := mkCollection(t, s, alice.ID, "alice", guichet.Private)
	a1 := mkDocument(t, s, aColl.ID, "a1", guichet.DocumentReady, hashOf("a1"))
	a2 := mkDocument(t, s, aColl.ID, "a2", guichet.DocumentReady, hashOf("a2"))
	bColl := mkCollection(t, s, bob.ID, "bob", guichet.Private)
	b1 := mkDocument(t, s, bColl.ID, "b1", guichet.DocumentReady, hashOf("b1"))
	b2 := mkDocument(t, s, bColl.ID, "b2", guichet.DocumentReady, hashOf("b2"))
	var chunks []guichet.Chunk
	for _, d := range []*guichet.Document{a1, a2, b1, b2} {
		chunks = append(chunks, guichet.Chunk{CollectionID: d.CollectionID, DocumentID: d.ID, Content: "chunk of " + d.Name})
	}
	must(t, index.Add(ctx, chunks))
	left := func(d *guichet.Document) int {
		t.Helper()
		list, err := index.Chunks(ctx, d.ID, 0, 0)
		must(t, err)
		return len(list)
	}
	must(t, s.DeleteDocument(ctx, b1.ID))
	if left(b1) != 0 || left(b2) != 1 {
		t.Errorf("after DeleteDocument: %d chunks of the deleted document, %d of its neighbour (want 0, 1)", left(b1), left(b2))
	}
	must(t, s.DeleteCollection(ctx, bColl.ID))
	if left(b2) != 0 || left(a1) != 1 {
		t.Errorf("after DeleteCollection: %d chunks left in it, %d in another (want 0, 1)", left(b2), left(a1))
	}
	must(t, s.DeleteUser(ctx, alice.ID))
	if left(a1)+left(a2) != 0 {
		t.Errorf("after DeleteUser: %d chunks of the user's documents left", left(a1)+left(a2))
	}
}
