package sim

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// wavHeaderScan bounds how much of an upload is kept to find the WAV
// header; the rest of the file is only counted, never buffered.
const wavHeaderScan = 4096

// wavInfo is what the start of a RIFF/WAVE file tells about its audio.
type wavInfo struct {
	ok         bool
	byteRate   uint32
	dataOffset int64  // where the samples start; 0 if not seen
	dataSize   uint32 // as declared
}

func parseWAVHeader(h []byte) wavInfo {
	var wi wavInfo
	if len(h) < 12 || string(h[0:4]) != "RIFF" || string(h[8:12]) != "WAVE" {
		return wi
	}
	for pos := 12; pos+8 <= len(h); {
		id := string(h[pos : pos+4])
		size := binary.LittleEndian.Uint32(h[pos+4 : pos+8])
		body := pos + 8
		switch id {
		case "fmt ":
			if body+12 <= len(h) {
				wi.byteRate = binary.LittleEndian.Uint32(h[body+8 : body+12])
			}
		case "data":
			wi.dataOffset = int64(body)
			wi.dataSize = size
			wi.ok = wi.byteRate > 0
			return wi
		}
		next := int64(body) + int64(size) + int64(size&1) // chunks are word-aligned
		if next > int64(len(h)) {
			break
		}
		pos = int(next)
	}
	if wi.byteRate > 0 { // no data chunk header in sight: assume the usual 44-byte header
		wi.ok, wi.dataOffset, wi.dataSize = true, 44, math.MaxUint32
	}
	return wi
}

// audioDuration in seconds: from the WAV header, else bytes/16000.
func audioDuration(head []byte, total int64) float64 {
	wi := parseWAVHeader(head)
	if !wi.ok {
		return float64(total) / 16000
	}
	data := max(total-wi.dataOffset, 0)
	// Streaming writers leave the size at 0 or 0xFFFFFFFF: trust the bytes.
	if wi.dataSize != 0 && wi.dataSize != math.MaxUint32 {
		data = min(data, int64(wi.dataSize))
	}
	return float64(data) / float64(wi.byteRate)
}

type transcriptionForm struct {
	model, language, prompt, format string
	temperature                     float64
	hasFile                         bool
	head                            []byte
	bytes                           int64
}

// readTranscriptionForm streams the multipart body: the file part is
// counted (its first bytes kept for the WAV header), small fields read.
func readTranscriptionForm(r *http.Request) (*transcriptionForm, *apiError, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("expected a multipart/form-data body: " + err.Error()), nil
	}
	f := &transcriptionForm{format: "json", language: "en"}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		name := part.FormName()
		if name == "file" {
			f.hasFile = true
			head := make([]byte, wavHeaderScan)
			n, err := io.ReadFull(part, head)
			if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
				return nil, nil, err
			}
			f.head = head[:n]
			rest, err := io.Copy(io.Discard, part)
			if err != nil {
				return nil, nil, err
			}
			f.bytes = int64(n) + rest
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 64<<10))
		if err != nil {
			return nil, nil, err
		}
		val := string(v)
		switch name {
		case "model":
			f.model = val
		case "language":
			if val != "" {
				f.language = val
			}
		case "prompt":
			f.prompt = val
		case "response_format":
			if val != "" {
				f.format = val
			}
		case "temperature":
			if val != "" {
				t, err := strconv.ParseFloat(val, 64)
				if err != nil {
					return nil, badRequest("`temperature` must be a number, got `" + val + "`"), nil
				}
				f.temperature = t
			}
		}
	}
	switch {
	case !f.hasFile:
		return nil, badRequest("`file` is required"), nil
	case f.format != "json" && f.format != "text" && f.format != "verbose_json" && f.format != "srt" && f.format != "vtt":
		return nil, badRequest("`response_format` must be one of json, text, verbose_json, srt, vtt; got `" + f.format + "`"), nil
	}
	return f, nil, nil
}

func (s *Server) transcription(w *respWriter, r *http.Request, _ []byte) outcome {
	f, e, err := readTranscriptionForm(r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds 32 MiB")
			return outFailed
		}
		if r.Context().Err() != nil {
			return outCancelled
		}
		writeError(w, http.StatusBadRequest, "cannot read the multipart body: "+err.Error())
		return outFailed
	}
	var m *modelCounters
	if e == nil {
		m, e = s.model(f.model)
	}
	if e != nil {
		writeError(w, e.status, e.msg)
		return outFailed
	}
	release, out, ok := s.startPooled(w, r, m, false)
	if !ok {
		return out
	}
	defer release()

	dur := audioDuration(f.head, f.bytes)
	durText := strconv.FormatFloat(math.Round(dur*100)/100, 'f', -1, 64)
	text := "guichet-sim simulated transcription of a " + durText + "s audio file (" + strconv.FormatInt(f.bytes, 10) + " bytes)."
	var b []byte
	switch f.format {
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, text+"\n")
	case "srt":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "1\n"+subtitleTime(0, ',')+" --> "+subtitleTime(dur, ',')+"\n"+text+"\n\n")
	case "vtt":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "WEBVTT\n\n"+subtitleTime(0, '.')+" --> "+subtitleTime(dur, '.')+"\n"+text+"\n\n")
	case "verbose_json":
		b = append(b, `{"task":"transcribe","language":`...)
		b = appendJSONString(b, f.language)
		b = append(b, `,"duration":`...)
		b = strconv.AppendFloat(b, dur, 'f', -1, 64)
		b = append(b, `,"text":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"segments":[{"id":0,"seek":0,"start":0.0,"end":`...)
		b = strconv.AppendFloat(b, dur, 'f', -1, 64)
		b = append(b, `,"text":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"tokens":[],"temperature":`...)
		b = strconv.AppendFloat(b, f.temperature, 'f', -1, 64)
		b = append(b, `,"avg_logprob":-0.1,"compression_ratio":1.0,"no_speech_prob":0.0}]}`...)
		writeJSONBytes(w, http.StatusOK, b)
	default:
		b = append(b, `{"text":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"usage":{"type":"duration","seconds":`...)
		b = appendInt(b, int(math.Ceil(dur)))
		b = append(b, `}}`...)
		writeJSONBytes(w, http.StatusOK, b)
	}
	m.promptToks.Add(int64(CountTokens(f.prompt)))
	m.genToks.Add(int64(CountTokens(text)))
	m.okStop.Add(1)
	return outCompleted
}

// subtitleTime formats seconds as HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (VTT).
func subtitleTime(sec float64, sep byte) string {
	ms := int64(math.Round(sec * 1000))
	h, ms := ms/3600000, ms%3600000
	m, ms := ms/60000, ms%60000
	s, ms := ms/1000, ms%1000
	var b strings.Builder
	pad := func(v int64, width int) {
		str := strconv.FormatInt(v, 10)
		for i := len(str); i < width; i++ {
			b.WriteByte('0')
		}
		b.WriteString(str)
	}
	pad(h, 2)
	b.WriteByte(':')
	pad(m, 2)
	b.WriteByte(':')
	pad(s, 2)
	b.WriteByte(sep)
	pad(ms, 3)
	return b.String()
}
