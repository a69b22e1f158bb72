package parse

import (
	"context"
	"encoding/xml"
	"strconv"
	"strings"
)

type odtPara struct {
	text      strings.Builder
	heading   int // outline level for text:h, 0 for text:p
	lastSpace bool
}

// addCollapsed appends character data, collapsing white space as ODF
// says (runs of spaces are written with text:s).
func (p *odtPara) addCollapsed(b []byte) {
	for _, c := range string(b) {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			if !p.lastSpace {
				p.text.WriteByte(' ')
				p.lastSpace = true
			}
			continue
		}
		p.text.WriteRune(c)
		p.lastSpace = false
	}
}

func (p *odtPara) addRaw(s string) {
	p.text.WriteString(s)
	p.lastSpace = strings.HasSuffix(s, " ")
}

type odtList struct {
	style   string
	counter int
}

func parseODT(ctx context.Context, data []byte, lim Limits) (*Document, error) {
	z, err := openZip(data, lim, "OpenDocument text")
	if err != nil {
		return nil, err
	}

	// Automatic list styles (in content.xml, before the body): which list
	// levels are numbered.
	listNumbered := map[string]map[int]bool{}
	var curListStyle string

	w := &mdWriter{max: lim.MaxExpandedBytes}
	var paras []*odtPara
	var tables tableStack
	var lists []*odtList
	pendingMarker := false
	inText, skip := 0, 0

	emit := func(p *odtPara) {
		text := strings.TrimSpace(p.text.String())
		if text == "" {
			return
		}
		if tables.inCell() {
			tables.addToCell(text)
			return
		}
		switch {
		case p.heading > 0:
			w.heading(p.heading, text, false)
		case len(lists) > 0:
			l := lists[len(lists)-1]
			indent := strings.Repeat("  ", min(len(lists)-1, 8))
			text = strings.ReplaceAll(text, "\n", "\n"+indent+"  ")
			if pendingMarker {
				pendingMarker = false
				w.block(indent+listMarker(listNumbered[l.style][min(len(lists), 10)], l.counter)+" "+text, true)
			} else {
				w.block(indent+"  "+text, true)
			}
		default:
			w.block(text, false)
		}
	}

	skipped := map[string]bool{"note": true, "annotation": true, "tracked-changes": true, "table-of-content": true, "sequence-decls": true, "variable-decls": true, "forms": true, "covered-table-cell": true}
	err = z.walk(ctx, "content.xml", false, func(tok xml.Token) {
		switch t := tok.(type) {
		case xml.StartElement:
			if skip > 0 {
				skip++
				return
			}
			name := t.Name.Local
			if inText == 0 {
				switch name {
				case "text":
					if t.Name.Space == "urn:oasis:names:tc:opendocument:xmlns:office:1.0" {
						inText = 1
					}
				case "list-style":
					curListStyle, _ = attr(t, "name")
					if len(listNumbered) < 10000 {
						listNumbered[curListStyle] = map[int]bool{}
					}
				case "list-level-style-number", "list-level-style-bullet":
					v, _ := attr(t, "level")
					if n, err := strconv.Atoi(v); err == nil && listNumbered[curListStyle] != nil && n <= 10 {
						listNumbered[curListStyle][n] = name == "list-level-style-number"
					}
				}
				return
			}
			inText++
			if skipped[name] {
				skip = 1
				return
			}
			var p *odtPara
			if len(paras) > 0 {
				p = paras[len(paras)-1]
			}
			switch name {
			case "p":
				paras = append(paras, &odtPara{})
			case "h":
				level := 1
				if v, ok := attr(t, "outline-level"); ok {
					if n, err := strconv.Atoi(v); err == nil && n > 0 {
						level = min(n, 6)
					}
				}
				paras = append(paras, &odtPara{heading: level})
			case "s":
				if p != nil {
					n := 1
					if v, ok := attr(t, "c"); ok {
						if c, err := strconv.Atoi(v); err == nil && c > 0 {
							n = min(c, 64)
						}
					}
					p.addRaw(strings.Repeat(" ", n))
				}
			case "tab":
				if p != nil {
					p.addRaw("\t")
				}
			case "line-break":
				if p != nil {
					p.addRaw("\n")
				}
			case "list":
				style, _ := attr(t, "style-name")
				if style == "" && len(lists) > 0 {
					style = lists[len(lists)-1].style
				}
				lists = append(lists, &odtList{style: style})
			case "list-item":
				if len(lists) > 0 {
					lists[len(lists)-1].counter++
					pendingMarker = true
				}
			case "list-header":
				pendingMarker = false
			case "table":
				tables.open()
			case "table-row":
				tables.startRow()
			case "table-cell":
				tables.startCell()
			}
		case xml.EndElement:
			if skip > 0 {
				skip--
				if skip == 0 {
					inText--
				}
				return
			}
			if inText == 0 {
				return
			}
			inText--
			switch t.Name.Local {
			case "p", "h":
				if len(paras) > 0 {
					p := paras[len(paras)-1]
					paras = paras[:len(paras)-1]
					emit(p)
				}
			case "list":
				if len(lists) > 0 {
					lists = lists[:len(lists)-1]
				}
				pendingMarker = false
			case "table-cell":
				tables.endCell()
			case "table-row":
				tables.endRow()
			case "table":
				tables.close(w)
			}
		case xml.CharData:
			if skip == 0 && inText > 0 && len(paras) > 0 {
				paras[len(paras)-1].addCollapsed(t)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	pages, err := w.finish()
	if err != nil {
		return nil, err
	}
	return &Document{Parser: ParserOdtXML, Title: w.docTitle(), Pages: pages}, nil
}
