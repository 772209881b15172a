package mapping

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// text/html -> XHTML-IM (RFC 7572 7, IM-08b; XEP-0071).
//
// The HTML must be well-formed XML (a document or a fragment; the HTML named
// entities such as &nbsp; are understood). It is rewritten to the XEP-0071
// recommended profile, never passed through: a, blockquote, br, cite, code,
// em, img, li, ol, p, span, strong, ul are kept (b -> strong, i -> em,
// tt -> code, h1..h6 and pre -> p); script, style, head and other active or
// invisible content is dropped with its children; any other element is
// replaced by its children. Attributes kept: a@href and img@src/alt/width/
// height, and href/src only with a harmless scheme. style attributes are
// dropped (XEP-0071 allows a CSS subset; we do not filter CSS).

// NSXHTML is the namespace of the XEP-0071 <body/>.
const NSXHTML = "http://www.w3.org/1999/xhtml"

const htmlWrapper = "stox-html-fragment"

type htmlAction uint8

const (
	htmlUnwrap htmlAction = iota // children only
	htmlKeep                     // element (possibly renamed) and children
	htmlDrop                     // nothing
	htmlVoid                     // br, img: empty element, children ignored
)

// htmlElement decides what happens to an element (lower-case local name)
// and its output name.
func htmlElement(name string) (htmlAction, string) {
	switch name {
	case "a", "blockquote", "cite", "code", "em", "li", "ol", "p", "span", "strong", "ul":
		return htmlKeep, name
	case "b":
		return htmlKeep, "strong"
	case "i":
		return htmlKeep, "em"
	case "tt", "kbd", "samp":
		return htmlKeep, "code"
	case "h1", "h2", "h3", "h4", "h5", "h6", "pre":
		return htmlKeep, "p"
	case "br", "img":
		return htmlVoid, name
	case "script", "style", "head", "title", "meta", "link", "base", "object", "embed",
		"applet", "iframe", "frame", "frameset", "noscript", "template", "svg", "math",
		"form", "input", "button", "select", "textarea", "audio", "video", "canvas":
		return htmlDrop, ""
	}
	return htmlUnwrap, ""
}

// htmlBlock reports whether an element breaks lines in the plain text.
func htmlBlock(name string) bool {
	switch name {
	case "p", "div", "li", "ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
		"pre", "tr", "table", "section", "article", "header", "footer", "dl", "dt", "dd", "hr":
		return true
	}
	return false
}

// safeURL reports whether an href/src value may be kept.
func safeURL(u string, img bool) bool {
	for i := 0; i < len(u); i++ {
		if u[i] < 0x20 || u[i] == 0x7f {
			return false
		}
	}
	scheme, _, ok := strings.Cut(strings.TrimSpace(u), ":")
	if !ok {
		return false
	}
	if img {
		return strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")
	}
	for _, s := range [...]string{"http", "https", "mailto", "xmpp", "sip", "sips", "tel"} {
		if strings.EqualFold(scheme, s) {
			return true
		}
	}
	return false
}

// sanitizeHTML turns an HTML body into an XEP-0071 <body/> element and its
// plain text. Input that is not well-formed XML: ErrUnsupportedType.
func sanitizeHTML(body []byte) (xhtml, text string, err error) {
	d := xml.NewDecoder(io.MultiReader(
		strings.NewReader("<"+htmlWrapper+">"),
		bytes.NewReader(body),
		strings.NewReader("</"+htmlWrapper+">")))
	d.Strict = true
	d.Entity = xml.HTMLEntity

	var out strings.Builder
	out.Grow(len(body) + 64)
	out.WriteString("<body xmlns='" + NSXHTML + "'>")
	var pt plainText
	// Per open element: its lower-case input name and its output name
	// ("" when unwrapped).
	type open struct{ in, out string }
	var stack []open
	depth := 0     // 1 inside the wrapper
	done := false  // the wrapper has ended
	skipWS := true // white space here is not content: before anything else, after </html>
	inHTML := func() bool { return len(stack) > 0 && stack[len(stack)-1].in == "html" }
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", "", fmt.Errorf("%w: text/html is not well-formed XML: %v", ErrUnsupportedType, err)
		}
		if done {
			return "", "", fmt.Errorf("%w: text/html is not a fragment", ErrUnsupportedType)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				continue // the wrapper
			}
			name := lower(t.Name.Local)
			action, outName := htmlElement(name)
			if htmlBlock(name) {
				pt.block()
			}
			switch action {
			case htmlDrop:
				depth--
				if err := d.Skip(); err != nil {
					return "", "", fmt.Errorf("%w: text/html is not well-formed XML: %v", ErrUnsupportedType, err)
				}
				continue
			case htmlVoid:
				depth--
				writeVoid(&out, &pt, outName, t.Attr)
				skipWS = false
				if err := d.Skip(); err != nil {
					return "", "", fmt.Errorf("%w: text/html is not well-formed XML: %v", ErrUnsupportedType, err)
				}
				continue
			case htmlKeep:
				if outName == "a" {
					if href := attr(t.Attr, "href"); safeURL(href, false) {
						out.WriteString("<a href='")
						writeXMLEscaped(&out, href, true)
						out.WriteString("'>")
					} else {
						outName = "" // a link we will not keep: its text only
					}
				} else {
					out.WriteByte('<')
					out.WriteString(outName)
					out.WriteByte('>')
				}
			}
			stack = append(stack, open{name, outName})
			if outName != "" {
				skipWS = false
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				done = true
				continue
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.out != "" {
				out.WriteString("</")
				out.WriteString(top.out)
				out.WriteByte('>')
			}
			if htmlBlock(top.in) {
				pt.block()
			}
			if top.in == "html" {
				skipWS = true
			}
		case xml.CharData:
			// White space around the document structure (before <html>,
			// between <html>, <head> and <body>) is not content.
			if (skipWS || inHTML()) && len(bytes.TrimSpace(t)) == 0 {
				continue
			}
			skipWS = false
			writeXMLEscaped(&out, string(t), false)
			pt.write(string(t))
		}
	}
	if !done {
		return "", "", fmt.Errorf("%w: text/html is not well-formed XML", ErrUnsupportedType)
	}
	out.WriteString("</body>")
	xhtml, text = out.String(), pt.String()
	if !validXMLText(xhtml) || !validXMLText(text) {
		return "", "", fmt.Errorf("%w: character not allowed in XML", ErrBadBody)
	}
	return xhtml, text, nil
}

func attr(attrs []xml.Attr, name string) string {
	for _, a := range attrs {
		if a.Name.Space == "" && strings.EqualFold(a.Name.Local, name) {
			return a.Value
		}
	}
	return ""
}

// writeVoid writes br or img.
func writeVoid(out *strings.Builder, pt *plainText, name string, attrs []xml.Attr) {
	if name == "br" {
		out.WriteString("<br/>")
		pt.lineBreak()
		return
	}
	src, alt := attr(attrs, "src"), attr(attrs, "alt")
	if safeURL(src, true) {
		out.WriteString("<img src='")
		writeXMLEscaped(out, src, true)
		out.WriteString("' alt='")
		writeXMLEscaped(out, alt, true)
		out.WriteByte('\'')
		for _, dim := range [...]string{"width", "height"} {
			if v := attr(attrs, dim); v != "" && isDigits(v) {
				out.WriteByte(' ')
				out.WriteString(dim)
				out.WriteString("='")
				out.WriteString(v)
				out.WriteByte('\'')
			}
		}
		out.WriteString("/>")
	} else if alt != "" {
		writeXMLEscaped(out, alt, false)
	}
	pt.write(alt)
}

func isDigits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// writeXMLEscaped escapes text or a single-quoted attribute value.
func writeXMLEscaped(b *strings.Builder, s string, inAttr bool) {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		case '\'':
			if inAttr {
				esc = "&apos;"
			}
		case '"':
			if inAttr {
				esc = "&quot;"
			}
		case '\n':
			if inAttr {
				esc = "&#xA;"
			}
		case '\t':
			if inAttr {
				esc = "&#x9;"
			}
		}
		if esc == "" {
			continue
		}
		b.WriteString(s[start:i])
		b.WriteString(esc)
		start = i + 1
	}
	b.WriteString(s[start:])
}

// plainText renders the text of HTML the way a browser lays it out, in
// short: runs of white space collapse to one space, block elements start a
// new line, <br/> breaks a line; no leading or trailing white space.
type plainText struct {
	b     strings.Builder
	space bool // white space seen since the last character
	nl    int  // line breaks owed before the next character
}

func (p *plainText) write(s string) {
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\r', '\f':
			p.space = true
			continue
		}
		if p.b.Len() > 0 {
			if p.nl > 0 {
				for range p.nl {
					p.b.WriteByte('\n')
				}
			} else if p.space {
				p.b.WriteByte(' ')
			}
		}
		p.nl, p.space = 0, false
		p.b.WriteRune(r)
	}
}

func (p *plainText) block() {
	if p.nl == 0 {
		p.nl = 1
	}
}

func (p *plainText) lineBreak() {
	if p.nl < 2 {
		p.nl++
	}
}

func (p *plainText) String() string { return p.b.String() }
