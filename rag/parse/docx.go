package parse

import (
	"archive/zip"
	"context"
	"encoding/xml"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// docxMainPart finds the main document part through _rels/.rels (the
// officeDocument relationship), falling back to word/document.xml.
func docxMainPart(files map[string]*zip.File) string {
	if f := files["_rels/.rels"]; f != nil && f.UncompressedSize64 < 1<<20 {
		rels := readSmall(f, 1<<20)
		dec := xml.NewDecoder(strings.NewReader(rels))
		for i := 0; i < 10000; i++ {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			se, ok := tok.(xml.StartElement)
			if !ok || se.Name.Local != "Relationship" {
				continue
			}
			typ, _ := attr(se, "Type")
			target, _ := attr(se, "Target")
			if strings.HasSuffix(typ, "/officeDocument") && target != "" {
				name := strings.TrimPrefix(path.Clean("/"+target), "/")
				if files[name] != nil {
					return name
				}
			}
		}
	}
	if files["word/document.xml"] != nil {
		return "word/document.xml"
	}
	return ""
}

// docxStyle is what matters of a paragraph style.
type docxStyle struct {
	name    string
	basedOn string
	outline int // w:outlineLvl + 1, 0 when absent
}

// Style ids of built-in headings in a few languages, for documents
// without styles.xml.
var docxHeadingID = regexp.MustCompile(`^(?i:heading|titre|berschrift|titolo|encabezado|kop|rubrik|nagłówek)\s*([1-9])$`)

// headingLevels resolves each style to a heading level (1-9, 0 for body
// text), following basedOn; title marks the Title style.
func headingLevels(styles map[string]*docxStyle) (levels map[string]int, title map[string]bool) {
	levels, title = map[string]int{}, map[string]bool{}
	for id := range styles {
		cur := id
		for range 10 {
			st := styles[cur]
			if st == nil {
				break
			}
			name := strings.ToLower(strings.TrimSpace(st.name))
			if name == "title" {
				levels[id], title[id] = 1, true
				break
			}
			if m := docxHeadingID.FindStringSubmatch(name); m != nil {
				levels[id], _ = strconv.Atoi(m[1])
				break
			}
			if st.outline > 0 && st.outline <= 9 {
				levels[id] = st.outline
				break
			}
			cur = st.basedOn
		}
	}
	return levels, title
}

type docxPara struct {
	text            strings.Builder
	style           string
	numID           string
	ilvl            int
	outline         int
	pageBreakBefore bool
}

func parseDOCX(ctx context.Context, data []byte, lim Limits) (*Document, error) {
	z, err := openZip(data, lim, "Word document")
	if err != nil {
		return nil, err
	}
	main := docxMainPart(z.files)
	if main == "" {
		return nil, errorf("the Word document is damaged (word/document.xml is missing); save it again and upload it again")
	}

	// Styles: which paragraph styles are headings.
	styles := map[string]*docxStyle{}
	var cur *docxStyle
	err = z.walk(ctx, "word/styles.xml", true, func(tok xml.Token) {
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "style":
				typ, _ := attr(t, "type")
				id, _ := attr(t, "styleId")
				cur = nil
				if typ == "paragraph" && id != "" && len(styles) < 10000 {
					cur = &docxStyle{}
					styles[id] = cur
				}
			case "name":
				if cur != nil {
					cur.name, _ = attr(t, "val")
				}
			case "basedOn":
				if cur != nil {
					cur.basedOn, _ = attr(t, "val")
				}
			case "outlineLvl":
				if cur != nil {
					v, _ := attr(t, "val")
					if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < 9 {
						cur.outline = n + 1
					}
				}
			}
		case xml.EndElement:
			if t.Name.Local == "style" {
				cur = nil
			}
		}
	})
	if err != nil {
		return nil, err
	}
	levels, titles := headingLevels(styles)

	// Numbering: which lists are bulleted and which numbered.
	absFmt := map[string]map[int]string{} // abstractNumId → ilvl → numFmt
	numAbs := map[string]string{}         // numId → abstractNumId
	var curAbs, curNum string
	curLvl := -1
	err = z.walk(ctx, "word/numbering.xml", true, func(tok xml.Token) {
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "abstractNum":
				curAbs, _ = attr(t, "abstractNumId")
				if len(absFmt) < 10000 {
					absFmt[curAbs] = map[int]string{}
				}
			case "lvl":
				v, _ := attr(t, "ilvl")
				curLvl, _ = strconv.Atoi(v)
			case "numFmt":
				if m := absFmt[curAbs]; m != nil && curLvl >= 0 && curNum == "" {
					m[curLvl], _ = attr(t, "val")
				}
			case "num":
				curNum, _ = attr(t, "numId")
			case "abstractNumId":
				if curNum != "" && len(numAbs) < 10000 {
					numAbs[curNum], _ = attr(t, "val")
				}
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "abstractNum":
				curAbs, curLvl = "", -1
			case "num":
				curNum = ""
			}
		}
	})
	if err != nil {
		return nil, err
	}
	numbered := func(numID string, ilvl int) bool {
		f := absFmt[numAbs[numID]][ilvl]
		return f != "" && f != "bullet" && f != "none"
	}
	counters := map[string]*[9]int{}

	w := &mdWriter{max: lim.MaxExpandedBytes}
	var paras []*docxPara
	var tables tableStack
	inRun, inT, skip := 0, 0, 0

	// emit writes the paragraph text collected so far.
	emit := func(p *docxPara) {
		text := strings.TrimSpace(p.text.String())
		p.text.Reset()
		if tables.inCell() {
			if text != "" {
				tables.addToCell(text)
			}
			return
		}
		if p.pageBreakBefore {
			p.pageBreakBefore = false
			if strings.TrimSpace(w.cur.String()) != "" {
				w.newPage()
			}
		}
		if text == "" {
			return
		}
		level := p.outline
		if level == 0 {
			level = levels[p.style]
			if level == 0 && styles[p.style] == nil {
				if m := docxHeadingID.FindStringSubmatch(p.style); m != nil {
					level, _ = strconv.Atoi(m[1])
				}
			}
		}
		isTitle := titles[p.style] || (len(styles) == 0 && strings.EqualFold(p.style, "title"))
		switch {
		case level > 0 || isTitle:
			w.heading(max(level, 1), text, isTitle)
		case p.numID != "" && p.numID != "0":
			c := counters[p.numID]
			if c == nil {
				c = new([9]int)
				counters[p.numID] = c
			}
			lvl := min(max(p.ilvl, 0), 8)
			c[lvl]++
			for i := lvl + 1; i < len(c); i++ {
				c[i] = 0
			}
			indent := strings.Repeat("  ", lvl)
			text = strings.ReplaceAll(text, "\n", "\n"+indent+"  ")
			w.block(indent+listMarker(numbered(p.numID, lvl), c[lvl])+" "+text, true)
		default:
			w.block(text, false)
		}
	}

	skipped := map[string]bool{"Fallback": true, "moveFrom": true, "del": true, "instrText": true, "delText": true, "footnoteReference": true, "endnoteReference": true, "commentReference": true}
	err = z.walk(ctx, main, false, func(tok xml.Token) {
		switch t := tok.(type) {
		case xml.StartElement:
			if skip > 0 || skipped[t.Name.Local] {
				skip++
				return
			}
			var p *docxPara
			if len(paras) > 0 {
				p = paras[len(paras)-1]
			}
			switch t.Name.Local {
			case "p":
				paras = append(paras, &docxPara{})
			case "pStyle":
				if p != nil {
					p.style, _ = attr(t, "val")
				}
			case "numId":
				if p != nil {
					p.numID, _ = attr(t, "val")
				}
			case "ilvl":
				if p != nil {
					v, _ := attr(t, "val")
					p.ilvl, _ = strconv.Atoi(v)
				}
			case "outlineLvl":
				if p != nil {
					v, _ := attr(t, "val")
					if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < 9 {
						p.outline = n + 1
					}
				}
			case "pageBreakBefore":
				if p != nil {
					v, _ := attr(t, "val")
					p.pageBreakBefore = v == "" || v == "1" || v == "true" || v == "on"
				}
			case "r":
				inRun++
			case "t":
				inT++
			case "tab", "ptab":
				if p != nil && inRun > 0 {
					p.text.WriteByte('\t')
				}
			case "br":
				if p == nil || inRun == 0 {
					return
				}
				if typ, _ := attr(t, "type"); typ == "page" && !tables.inCell() && len(paras) == 1 {
					emit(p)
					w.newPage()
					return
				}
				p.text.WriteByte('\n')
			case "cr":
				if p != nil && inRun > 0 {
					p.text.WriteByte('\n')
				}
			case "noBreakHyphen":
				if p != nil && inRun > 0 {
					p.text.WriteByte('-')
				}
			case "tbl":
				tables.open()
			case "tr":
				tables.startRow()
			case "tc":
				tables.startCell()
			}
		case xml.EndElement:
			if skip > 0 {
				skip--
				return
			}
			switch t.Name.Local {
			case "p":
				if len(paras) > 0 {
					p := paras[len(paras)-1]
					paras = paras[:len(paras)-1]
					emit(p)
				}
			case "r":
				inRun = max(inRun-1, 0)
			case "t":
				inT = max(inT-1, 0)
			case "tc":
				tables.endCell()
			case "tr":
				tables.endRow()
			case "tbl":
				tables.close(w)
			}
		case xml.CharData:
			if skip == 0 && inT > 0 && len(paras) > 0 {
				paras[len(paras)-1].text.Write(t)
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
	return &Document{Parser: ParserDocxXML, Title: w.docTitle(), Pages: pages}, nil
}
