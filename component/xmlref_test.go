package component

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// The reference stanza reader: encoding/xml's Decoder, as stox read stanzas
// before xmlread.go. Tests hold the fast reader to it (FuzzElementReader)
// and the fake XMPP server of stream_test.go reads with it.

// readElement reads the element whose start tag has just been read.
func readElement(d *xml.Decoder, start xml.StartElement, depth int) (*Element, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	e := &Element{Space: start.Name.Space, Local: start.Name.Local}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue // namespace declarations are carried by Space
		}
		if a.Name.Space == "xml" {
			a.Name.Space = nsXML
		}
		e.Attr = append(e.Attr, a)
	}
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := readElement(d, t, depth+1)
			if err != nil {
				return nil, err
			}
			e.Children = append(e.Children, c)
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			e.Text = text.String()
			return e, nil
		}
	}
}

// parseElementRef is ParseElement with the reference reader.
func parseElementRef(s string) (*Element, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if st, ok := tok.(xml.StartElement); ok {
			return readElement(d, st, 0)
		}
	}
}
