package parse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	gopdfium "github.com/klippa-app/go-pdfium"
	pdfiumerrors "github.com/klippa-app/go-pdfium/errors"
	"github.com/klippa-app/go-pdfium/references"
	"github.com/klippa-app/go-pdfium/requests"
	"github.com/klippa-app/go-pdfium/webassembly"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// PDFium runs as WebAssembly inside the process (no cgo). Compiling the
// module takes 4-7 s, so it is done once, lazily, and the machine code is
// kept in a wazero compilation cache on disk (about 21 MB), which brings
// later starts down to a fraction of a second.
//
// Each parse borrows a fresh module instance from the pool and discards it
// afterwards, so a hostile PDF never leaves state (or a grown memory)
// behind. Instances are capped at 1 GiB of linear memory and at GOMAXPROCS
// at once; on timeout the instance is killed, which aborts the running
// WebAssembly code.
var pdfiumState struct {
	once sync.Once
	done chan struct{}
	pool gopdfium.Pool
	err  error
}

const pdfiumMemoryPages = 16384 // 64 KiB pages: 1 GiB

// WarmPDFium starts PDFium in the background when PDFs will be read by it
// (no pdftotext), so that the first upload does not pay the compile time.
// It is optional: Parse starts it on first use anyway.
func WarmPDFium() {
	if PDFParser() == ParserPdfium {
		startPdfium()
	}
}

func startPdfium() chan struct{} {
	pdfiumState.once.Do(func() {
		pdfiumState.done = make(chan struct{})
		go func() {
			defer close(pdfiumState.done)
			defer func() {
				if r := recover(); r != nil {
					pdfiumState.err = fmt.Errorf("pdfium init panic: %v", r)
				}
			}()
			pdfiumState.pool, pdfiumState.err = initPdfium()
		}()
	})
	return pdfiumState.done
}

// wazeroCacheDir is os.UserCacheDir()/guichet/wazero, or a per-user
// directory under the temporary directory when there is no cache dir.
func wazeroCacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		d := filepath.Join(dir, "guichet", "wazero")
		if os.MkdirAll(d, 0o700) == nil {
			return d
		}
	}
	d := filepath.Join(os.TempDir(), "guichet-wazero-"+strconv.Itoa(os.Getuid()))
	if os.MkdirAll(d, 0o700) == nil {
		return d
	}
	return ""
}

func initPdfium() (gopdfium.Pool, error) {
	dir := wazeroCacheDir()
	var cache wazero.CompilationCache
	if dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			cache = c
		}
	}
	if cache == nil {
		cache = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesExceptionHandling).
		WithCompilationCache(cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pdfiumMemoryPages)
	n := max(runtime.GOMAXPROCS(0), 1)
	pool, err := webassembly.Init(webassembly.Config{
		MinIdle:       0,
		MaxIdle:       n,
		MaxTotal:      n,
		RuntimeConfig: rc,
		FSConfig:      wazero.NewFSConfig(), // no file system: documents come as bytes
		Stdout:        io.Discard,
		Stderr:        io.Discard,
		ReuseWorkers:  false,
	})
	if err != nil {
		return nil, err
	}
	return pool, nil
}

func parsePdfium(ctx context.Context, data []byte, lim Limits) (*Document, error) {
	select {
	case <-startPdfium():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if pdfiumState.err != nil {
		return nil, &Error{Reason: "PDF files cannot be read right now (the PDF reader failed to start); try again later", Err: pdfiumState.err}
	}
	inst, err := pdfiumState.pool.GetInstanceWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &Error{Reason: "PDF files cannot be read right now (the PDF reader failed to start); try again later", Err: err}
	}

	// Kill the instance (aborting the WebAssembly code) when ctx ends.
	stop, killerDone := make(chan struct{}), make(chan struct{})
	killed := false
	go func() {
		defer close(killerDone)
		select {
		case <-ctx.Done():
			killed = true
			_ = inst.Kill()
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		<-killerDone
		if !killed {
			_ = inst.Close()
		}
	}()

	texts, err := pdfiumTexts(ctx, inst, data, lim)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return pdfPages(ParserPdfium, texts), nil
}

func pdfiumTexts(ctx context.Context, inst gopdfium.Pdfium, data []byte, lim Limits) ([]string, error) {
	doc, err := inst.OpenDocument(&requests.OpenDocument{File: &data})
	if err != nil {
		switch {
		case errors.Is(err, pdfiumerrors.ErrPassword):
			return nil, &Error{Reason: encryptedReason, Err: err}
		case errors.Is(err, pdfiumerrors.ErrSecurity):
			return nil, &Error{Reason: "the PDF uses an encryption that is not supported; export it again without protection and upload it again", Err: err}
		}
		return nil, &Error{Reason: brokenPDFReason, Err: err}
	}
	defer inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: doc.Document})
	count, err := inst.FPDF_GetPageCount(&requests.FPDF_GetPageCount{Document: doc.Document})
	if err != nil {
		return nil, &Error{Reason: brokenPDFReason, Err: err}
	}
	if count.PageCount > lim.MaxPages {
		return nil, tooManyPages(FormatPDF, count.PageCount, lim)
	}
	if count.PageCount <= 0 {
		return nil, &Error{Reason: "the PDF has no pages; export or save it again as PDF and upload it again", Err: errors.New("pdfium: 0 pages")}
	}
	texts := make([]string, 0, count.PageCount)
	var total int64
	for i := range count.PageCount {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		text, err := pdfiumPageText(inst, doc.Document, i)
		if err != nil {
			// One unreadable page does not spoil the others.
			texts = append(texts, "")
			continue
		}
		total += int64(len(text))
		if total > lim.MaxExpandedBytes {
			return nil, tooMuchText(lim)
		}
		texts = append(texts, text)
	}
	return texts, nil
}

// pdfiumPageText gets the text of a page in one FPDFText_GetText call
// (go-pdfium's GetPageText makes one WebAssembly call per character, about
// 10 times slower).
func pdfiumPageText(inst gopdfium.Pdfium, doc references.FPDF_DOCUMENT, index int) (string, error) {
	page, err := inst.FPDF_LoadPage(&requests.FPDF_LoadPage{Document: doc, Index: index})
	if err != nil {
		return "", err
	}
	defer inst.FPDF_ClosePage(&requests.FPDF_ClosePage{Page: page.Page})
	tp, err := inst.FPDFText_LoadPage(&requests.FPDFText_LoadPage{Page: requests.Page{ByReference: &page.Page}})
	if err != nil {
		return "", err
	}
	defer inst.FPDFText_ClosePage(&requests.FPDFText_ClosePage{TextPage: tp.TextPage})
	n, err := inst.FPDFText_CountChars(&requests.FPDFText_CountChars{TextPage: tp.TextPage})
	if err != nil || n.Count <= 0 {
		return "", err
	}
	res, err := inst.FPDFText_GetText(&requests.FPDFText_GetText{TextPage: tp.TextPage, Count: n.Count})
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(res.Text, "\x00", ""), nil
}
