package httpapi

import (
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/upstream"
)

// maxFieldBytes bounds each non-file field of a multipart form.
const maxFieldBytes = 64 << 10

var transcriptionFormats = map[string]bool{"json": true, "text": true, "verbose_json": true, "srt": true, "vtt": true}

// upload is a multipart request read once: small fields in memory, the
// file spooled to disk (never whole in memory), so that the request can be
// sent again to another provider.
type upload struct {
	fields   []formField
	file     *os.File
	fileName string
	fileType string
	model    string
}

type formField struct{ name, value string }

func (u *upload) close() {
	if u.file != nil {
		u.file.Close()
		os.Remove(u.file.Name())
	}
}

// handleTranscription relays /v1/audio/transcriptions.
func (s *Server) handleTranscription() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := s.begin(w, r, guichet.EndpointTranscription)
		u, gerr := s.readUpload(w, r)
		if u != nil {
			defer u.close()
		}
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		model, gerr := s.resolve(x, u.model)
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		// Audio has no input tokens to estimate: requests and budgets only.
		if gerr := s.admit(r.Context(), w.Header(), x, model, 0); gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		if gerr := s.schedule(r.Header, x, model, openai.Object{}); gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		defer x.unschedule() // after the upstream answer is closed: its slot is free
		build := func(ctx context.Context, p *upstream.Provider) (*http.Request, error) {
			body, contentType, err := u.body(p.ModelName)
			if err != nil {
				return nil, err
			}
			return x.upstreamRequest(ctx, p, guichet.EndpointTranscription, body, contentType)
		}
		call := routing.Call{Build: build}
		ans := s.send(w, r, x, model, call)
		if ans == nil {
			return
		}
		defer ans.Close()
		relayAsIs(w, ans)
		s.settle(x, ans.StatusCode)
	})
}

// body streams the upload again from its spool file, naming model.
func (u *upload) body(model string) (io.Reader, string, error) {
	file, err := os.Open(u.file.Name())
	if err != nil {
		return nil, "", err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		defer file.Close()
		err := func() error {
			if err := mw.WriteField("model", model); err != nil {
				return err
			}
			for _, f := range u.fields {
				if err := mw.WriteField(f.name, f.value); err != nil {
					return err
				}
			}
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="file"; filename="`+escapeQuotes(u.fileName)+`"`)
			h.Set("Content-Type", u.fileType)
			part, err := mw.CreatePart(h)
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, file); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return pr, mw.FormDataContentType(), nil
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

func escapeQuotes(s string) string { return quoteEscaper.Replace(s) }

// readUpload reads the multipart form as a stream within the upload limit.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request) (*upload, *guichet.Error) {
	limit := int64(s.cfg.Server.MaxUploadBytes)
	if r.ContentLength > limit {
		return nil, uploadTooLarge(limit)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_multipart", "send the audio as multipart/form-data with a file field and a model field")
	}
	u := &upload{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u, multipartError(err, limit)
		}
		name := part.FormName()
		switch {
		case name == "file":
			if u.file != nil {
				return u, errorf(http.StatusUnprocessableEntity, "invalid_value", "file: send one file only").WithParam("file")
			}
			if u.file, err = os.CreateTemp(s.cfg.Server.DataDir, "upload-*"); err != nil {
				u.file = nil
				return u, errorf(http.StatusInsufficientStorage, "spool_failed", "the upload could not be stored for relaying")
			}
			u.fileName = part.FileName()
			u.fileType = part.Header.Get("Content-Type")
			if u.fileType == "" {
				u.fileType = "application/octet-stream"
			}
			if _, err := io.Copy(u.file, part); err != nil {
				return u, multipartError(err, limit)
			}
		case name != "":
			b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
			if err != nil {
				return u, multipartError(err, limit)
			}
			if len(b) > maxFieldBytes {
				return u, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s: longer than %d bytes", name, maxFieldBytes).WithParam(name)
			}
			if name == "model" {
				u.model = string(b)
			} else {
				u.fields = append(u.fields, formField{name, string(b)})
			}
		}
	}
	return u, u.validate()
}

func (u *upload) validate() *guichet.Error {
	if u.file == nil {
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "file: is required: the audio file (mp3, wav, flac, ogg, m4a, webm…)").WithParam("file")
	}
	if u.model == "" {
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "model: is required: the name or alias of a model (see GET /v1/models)").WithParam("model")
	}
	for _, f := range u.fields {
		switch f.name {
		case "response_format":
			if !transcriptionFormats[f.value] {
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "response_format: must be json, text, verbose_json, srt or vtt, not %q", f.value).WithParam("response_format")
			}
		case "temperature":
			if t, err := strconv.ParseFloat(f.value, 64); err != nil || t < 0 || t > 1 {
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "temperature: must be a number between 0 and 1").WithParam("temperature")
			}
		}
	}
	return nil
}

func multipartError(err error, limit int64) *guichet.Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return uploadTooLarge(limit)
	}
	return errorf(http.StatusBadRequest, "invalid_multipart", "the multipart body could not be read: it is malformed or was cut short")
}

func uploadTooLarge(limit int64) *guichet.Error {
	return errorf(http.StatusRequestEntityTooLarge, "file_too_large", "the upload is larger than the limit of %d bytes", limit)
}
