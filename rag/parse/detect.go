package parse

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
)

// sniffed is what the bytes of a file are.
type sniffed struct {
	format string // a Format* constant when supported, "" otherwise
	what   string // for messages: "a PDF", "a ZIP archive", "text"...
	// problem is set when the bytes are neither a supported binary format
	// nor text: it completes "it ..." in messages.
	problem string
}

var formatNames = map[string]string{
	FormatPDF:      "a PDF",
	FormatDOCX:     "a Word document (DOCX)",
	FormatODT:      "an OpenDocument text (ODT)",
	FormatHTML:     "an HTML page",
	FormatMarkdown: "Markdown text",
	FormatText:     "plain text",
}

var extFormats = map[string]string{
	".pdf":      FormatPDF,
	".docx":     FormatDOCX,
	".docm":     FormatDOCX,
	".odt":      FormatODT,
	".html":     FormatHTML,
	".htm":      FormatHTML,
	".xhtml":    FormatHTML,
	".md":       FormatMarkdown,
	".markdown": FormatMarkdown,
	".txt":      FormatText,
	".text":     FormatText,
}

// Extensions of formats we know but do not read, with what to do instead.
var unsupportedExts = map[string]string{
	".doc":  "old Word documents (.doc) are not supported; save it as .docx or PDF",
	".rtf":  "RTF documents are not supported; save it as .docx or PDF",
	".xls":  "spreadsheets are not supported; export the sheet as PDF or text",
	".xlsx": "spreadsheets are not supported; export the sheet as PDF or text",
	".ods":  "spreadsheets are not supported; export the sheet as PDF or text",
	".ppt":  "presentations are not supported; export it as PDF",
	".pptx": "presentations are not supported; export it as PDF",
	".odp":  "presentations are not supported; export it as PDF",
	".epub": "EPUB books are not supported; convert it to PDF",
	".zip":  "ZIP archives are not supported; upload the files inside one by one",
	".png":  "images are not supported; upload a PDF with a text layer (OCR is not available)",
	".jpg":  "images are not supported; upload a PDF with a text layer (OCR is not available)",
	".jpeg": "images are not supported; upload a PDF with a text layer (OCR is not available)",
	".gif":  "images are not supported; upload a PDF with a text layer (OCR is not available)",
	".tif":  "images are not supported; upload a PDF with a text layer (OCR is not available)",
	".tiff": "images are not supported; upload a PDF with a text layer (OCR is not available)",
	".mp3":  "audio files are not supported here; use the transcription endpoint",
	".wav":  "audio files are not supported here; use the transcription endpoint",
}

const supportedList = "PDF, DOCX, ODT, HTML, Markdown or plain text"

// contentTypeFormats maps a declared media type to the formats it may
// carry. Types not listed (application/octet-stream, unknown ones) say
// nothing and are ignored.
var contentTypeFormats = map[string][]string{
	"application/pdf":   {FormatPDF},
	"application/x-pdf": {FormatPDF},
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document": {FormatDOCX},
	"application/vnd.ms-word.document.macroenabled.12":                        {FormatDOCX},
	"application/msword":                      {FormatDOCX}, // some clients send it for .docx
	"application/vnd.oasis.opendocument.text": {FormatODT},
	"application/zip":                         {FormatDOCX, FormatODT},
	"application/x-zip-compressed":            {FormatDOCX, FormatODT},
	"text/html":                               {FormatHTML},
	"application/xhtml+xml":                   {FormatHTML},
	"application/html":                        {FormatHTML},
	"text/markdown":                           {FormatMarkdown, FormatText},
	"text/x-markdown":                         {FormatMarkdown, FormatText},
	"application/markdown":                    {FormatMarkdown, FormatText},
	"text/plain":                              {FormatText, FormatMarkdown, FormatHTML},
	"text/txt":                                {FormatText, FormatMarkdown},
	"text/csv":                                {FormatText},
	"application/json":                        {FormatText},
}

// Detect returns the format of a file (one of the Format* constants) from
// its bytes, its name and its declared content type. The bytes decide what
// the file is; the name's extension and the content type, when they say
// something, must agree, otherwise the *Error says what the file claims to
// be and what it really is. Text without a telling name or type is HTML
// when it starts like HTML, plain text otherwise.
func Detect(name, contentType string, data []byte) (string, error) {
	s := sniff(data)
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(name, "\\", "/")))
	shown := path.Base(strings.ReplaceAll(name, "\\", "/"))
	if len(shown) > 80 {
		shown = truncateUTF8(shown, 80) + "…"
	}
	ctFormats, mediaType := parseContentType(contentType)

	if len(data) == 0 {
		return "", errorf("the file is empty; upload a %s file", supportedList)
	}

	format := extFormats[ext]
	if format == "" {
		if msg, ok := unsupportedExts[ext]; ok {
			return "", errorf("the file %q cannot be used: %s", shown, msg)
		}
	}

	if format != "" {
		if !compatible(format, s) {
			return "", errorf("the file is named %q but is not %s (%s); upload the right file or fix its name", shown, formatNames[format], describe(s))
		}
	} else {
		// No telling extension: a single content type may decide between
		// the text formats; otherwise the bytes do.
		switch {
		case s.format == "":
			return "", errorf("unsupported file type: %s; upload a %s file", describe(s), supportedList)
		case s.format != FormatText:
			format = s.format
		case len(ctFormats) > 0 && isTextFormat(ctFormats[0]):
			format = ctFormats[0]
		case looksLikeHTML(data):
			format = FormatHTML
		default:
			format = FormatText
		}
	}

	if len(ctFormats) > 0 && !contains(ctFormats, format) {
		return "", errorf("the file was sent with content type %q but is %s; send it with the right content type (or application/octet-stream)", mediaType, formatNames[format])
	}
	return format, nil
}

func parseContentType(ct string) ([]string, string) {
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return nil, ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	}
	return contentTypeFormats[mt], mt
}

func isTextFormat(f string) bool {
	return f == FormatHTML || f == FormatMarkdown || f == FormatText
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// compatible reports whether bytes sniffed as s can be read as format.
func compatible(format string, s sniffed) bool {
	if isTextFormat(format) {
		return s.format == FormatText
	}
	return s.format == format
}

// describe completes "it ..." style explanations: what the bytes are.
func describe(s sniffed) string {
	if s.problem != "" {
		return "it " + s.problem
	}
	switch s.format {
	case FormatText:
		return "it is text"
	case FormatPDF:
		return "it is a PDF"
	}
	return "it is " + s.what
}

// sniff looks at the bytes only.
func sniff(data []byte) sniffed {
	switch {
	case len(data) == 0:
		return sniffed{problem: "is empty"}
	case isPDF(data):
		return sniffed{format: FormatPDF, what: "a PDF"}
	case bytes.HasPrefix(data, []byte("PK\x03\x04")), bytes.HasPrefix(data, []byte("PK\x05\x06")):
		return sniffZip(data)
	}
	for _, m := range magics {
		if bytes.HasPrefix(data, []byte(m.prefix)) {
			return sniffed{what: m.what, problem: "starts like " + m.what}
		}
	}
	if bytes.HasPrefix(data, []byte("RIFF")) && len(data) >= 12 && string(data[8:12]) == "WAVE" {
		return sniffed{what: "a WAV audio file", problem: "starts like a WAV audio file"}
	}
	if _, _, p := decodeText(data); p != "" {
		return sniffed{problem: string(p)}
	}
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n\ufeff"), []byte("{\\rtf")) {
		return sniffed{what: "an RTF document", problem: "is an RTF document"}
	}
	return sniffed{format: FormatText, what: "text"}
}

var magics = []struct{ prefix, what string }{
	{"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "an old Microsoft Office file (.doc, .xls or .ppt)"},
	{"\x89PNG\r\n\x1a\n", "a PNG image"},
	{"\xFF\xD8\xFF", "a JPEG image"},
	{"GIF87a", "a GIF image"},
	{"GIF89a", "a GIF image"},
	{"II*\x00", "a TIFF image"},
	{"MM\x00*", "a TIFF image"},
	{"\x1F\x8B", "a gzip archive"},
	{"BZh", "a bzip2 archive"},
	{"\xFD7zXZ\x00", "an xz archive"},
	{"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"},
	{"Rar!\x1A\x07", "a RAR archive"},
	{"ID3", "an MP3 audio file"},
	{"\x7FELF", "an executable program"},
	{"MZ", "a Windows executable"},
	{"OggS", "an Ogg media file"},
	{"\x00\x00\x00\x18ftyp", "an MP4 media file"},
	{"\x00\x00\x00\x20ftyp", "an MP4 media file"},
}

// sniffZip tells Office and OpenDocument files from other ZIP archives by
// their entry names (and the OpenDocument "mimetype" entry, read bounded).
func sniffZip(data []byte) sniffed {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return sniffed{what: "a ZIP archive", problem: "starts like a ZIP archive but is damaged"}
	}
	names := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		if _, dup := names[f.Name]; !dup {
			names[f.Name] = f
		}
	}
	if f := names["mimetype"]; f != nil {
		mt := readSmall(f, 200)
		switch {
		case strings.HasPrefix(mt, "application/vnd.oasis.opendocument.text"):
			return sniffed{format: FormatODT, what: formatNames[FormatODT]}
		case strings.HasPrefix(mt, "application/vnd.oasis.opendocument.spreadsheet"):
			return sniffed{what: "an OpenDocument spreadsheet (ODS)"}
		case strings.HasPrefix(mt, "application/vnd.oasis.opendocument.presentation"):
			return sniffed{what: "an OpenDocument presentation (ODP)"}
		case strings.HasPrefix(mt, "application/vnd.oasis.opendocument"):
			return sniffed{what: fmt.Sprintf("an OpenDocument file of type %q", mt)}
		case strings.HasPrefix(mt, "application/epub+zip"):
			return sniffed{what: "an EPUB book"}
		}
	}
	switch {
	case names["word/document.xml"] != nil || (names["[Content_Types].xml"] != nil && docxMainPart(names) != ""):
		return sniffed{format: FormatDOCX, what: formatNames[FormatDOCX]}
	case names["xl/workbook.xml"] != nil:
		return sniffed{what: "an Excel workbook (XLSX)"}
	case names["ppt/presentation.xml"] != nil:
		return sniffed{what: "a PowerPoint presentation (PPTX)"}
	}
	return sniffed{what: "a ZIP archive", problem: "starts like a ZIP archive"}
}

func readSmall(f *zip.File, n int64) string {
	rc, err := f.Open()
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, n))
	return strings.TrimSpace(string(b))
}

func looksLikeHTML(data []byte) bool {
	head := data
	if len(head) > 512 {
		head = head[:512]
	}
	head = bytes.ToLower(bytes.TrimLeft(bytes.TrimPrefix(head, []byte{0xEF, 0xBB, 0xBF}), " \t\r\n"))
	for _, p := range []string{"<!doctype html", "<html", "<head", "<body"} {
		if bytes.HasPrefix(head, []byte(p)) {
			return true
		}
	}
	return false
}

// isPDF: the header starts the file, or (readers allow some junk before
// it) appears in the first 1024 bytes of a file that ends like a PDF, so
// that a text that merely mentions "%PDF-" stays text.
func isPDF(data []byte) bool {
	if bytes.HasPrefix(data, []byte("%PDF-")) {
		return true
	}
	head := data[:min(len(data), 1024)]
	if !bytes.Contains(head, []byte("%PDF-")) {
		return false
	}
	tail := data[max(len(data)-2048, 0):]
	return bytes.Contains(tail, []byte("%%EOF")) || bytes.Contains(tail, []byte("startxref"))
}
