package parse

import (
	"context"
	"strings"

	"github.com/JohannesKaufmann/html-to-markdown/v2/converter"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/base"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/commonmark"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/table"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// maxHTMLDepth bounds element nesting: the converter renders recursively,
// and a Go stack overflow cannot be recovered.
const maxHTMLDepth = 512

func parseHTML(ctx context.Context, data []byte, lim Limits) (*Document, error) {
	s, _, p := decodeText(data)
	if p != "" {
		return nil, notTextError("the file is meant to be an HTML page", p)
	}
	root, err := html.Parse(strings.NewReader(s))
	if err != nil && strings.Contains(err.Error(), "exceeds") {
		return nil, wrapf(err, "the HTML page nests its elements more than %d levels deep; simplify it and upload it again", maxHTMLDepth)
	}
	if err != nil {
		return nil, wrapf(err, "the HTML page could not be read; save it again and upload it again")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	title, depth := "", 0
	var main *html.Node
	mains := 0
	// Iterative walk: find the title, measure the depth, drop elements that
	// carry no readable text (the converter drops script and style too).
	type item struct {
		n       *html.Node
		depth   int
		inTable bool
	}
	stack := []item{{root, 0, false}}
	var drop []*html.Node
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		depth = max(depth, it.depth)
		if depth > maxHTMLDepth {
			return nil, errorf("the HTML page nests its elements more than %d levels deep; simplify it and upload it again", maxHTMLDepth)
		}
		n := it.n
		if n.Type == html.ElementNode {
			switch n.DataAtom {
			case atom.Title:
				if title == "" {
					title = nodeText(n)
				}
			case atom.Main:
				main = n
				mains++
			case atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Svg, atom.Canvas, atom.Object, atom.Embed, atom.Iframe,
				atom.Nav, atom.Button, atom.Select:
				drop = append(drop, n)
				continue
			}
			// A rule inside a table cell makes the converter give up
			// the Markdown table; it carries no text.
			if n.DataAtom == atom.Hr && it.inTable {
				drop = append(drop, n)
				continue
			}
			if hiddenElement(n) {
				drop = append(drop, n)
				continue
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			stack = append(stack, item{c, it.depth + 1, it.inTable || n.DataAtom == atom.Table})
		}
	}
	if mains != 1 {
		main = nil
	}
	for _, n := range drop {
		if n.Parent != nil {
			n.Parent.RemoveChild(n)
		}
	}

	conv := converter.NewConverter(converter.WithPlugins(
		base.NewBasePlugin(),
		commonmark.NewCommonmarkPlugin(),
		table.NewTablePlugin(
			table.WithNewlineBehavior(table.NewlineBehaviorPreserve),
			table.WithCellPaddingBehavior(table.CellPaddingBehaviorMinimal),
			table.WithSkipEmptyRows(true),
			table.WithHeaderPromotion(true),
		),
	))
	if main != nil && len(nodeText(main)) > 0 {
		// Keep the page's main content, without menus and footers.
		root = main
	}
	md, err := conv.ConvertNode(root, converter.WithContext(ctx))
	if err != nil {
		return nil, wrapf(err, "the HTML page could not be converted to text; save it again and upload it again")
	}
	if int64(len(md)) > lim.MaxExpandedBytes {
		return nil, tooMuchText(lim)
	}
	// The converter separates adjacent lists with an HTML comment.
	text := cleanText(strings.ReplaceAll(string(md), "<!--THE END-->", ""))
	if title == "" {
		title = markdownTitle(text)
	}
	return &Document{Parser: ParserHTMLToMarkdown, Title: title, Pages: []Page{{Text: text}}}, nil
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node, int)
	walk = func(n *html.Node, d int) {
		if d > 32 || b.Len() > 4096 {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, d+1)
		}
	}
	walk(n, 0)
	return collapseSpaces(b.String())
}

// hiddenElement reports elements that browsers do not show, or that are
// marked as navigation chrome.
func hiddenElement(n *html.Node) bool {
	for _, a := range n.Attr {
		switch strings.ToLower(a.Key) {
		case "hidden":
			return true
		case "aria-hidden":
			if strings.EqualFold(strings.TrimSpace(a.Val), "true") {
				return true
			}
		case "role":
			switch strings.ToLower(strings.TrimSpace(a.Val)) {
			case "navigation", "search", "menu", "menubar", "toolbar":
				return true
			}
		}
	}
	return false
}
