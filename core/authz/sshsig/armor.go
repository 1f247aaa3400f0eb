package sshsig

import (
	"bytes"
	"encoding/base64"
	"fmt"
)

const (
	armorBegin = "-----BEGIN SSH SIGNATURE-----"
	armorEnd   = "-----END SSH SIGNATURE-----"
	// armorWidth is the line width ssh-keygen writes (the spec says 76).
	armorWidth = 70
	// maxArmored bounds the input; real signatures are a few KiB at most.
	maxArmored = 64 << 10
)

// Armor wraps a raw SSHSIG blob in the text armor, 70 base64 characters a
// line like ssh-keygen.
func Armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > armorWidth {
		b.WriteString(enc[:armorWidth] + "\n")
		enc = enc[armorWidth:]
	}
	if enc != "" {
		b.WriteString(enc + "\n")
	}
	b.WriteString(armorEnd + "\n")
	return b.Bytes()
}

// Unarmor extracts the blob from an armored signature. Any line width is
// accepted (ssh-keygen writes 70, the spec says 76, encoding/pem 64), as
// are CRLF line ends and blank lines around the armor; anything else
// outside it, PEM headers and non-base64 text inside it are refused.
func Unarmor(data []byte) ([]byte, error) {
	if len(data) > maxArmored {
		return nil, fmt.Errorf("%w: armored signature of %d bytes exceeds %d", ErrMalformed, len(data), maxArmored)
	}
	lines := bytes.Split(data, []byte("\n"))
	var body []byte
	state := 0 // 0 before BEGIN, 1 inside, 2 after END
	for i, line := range lines {
		line = bytes.TrimRight(line, " \t\r")
		switch state {
		case 0:
			if len(bytes.TrimLeft(line, " \t")) == 0 {
				continue
			}
			if string(line) != armorBegin {
				return nil, fmt.Errorf("%w: line %d: expected %q", ErrMalformed, i+1, armorBegin)
			}
			state = 1
		case 1:
			if string(line) == armorEnd {
				state = 2
				continue
			}
			if len(line) == 0 {
				return nil, fmt.Errorf("%w: line %d: blank line inside the armor", ErrMalformed, i+1)
			}
			for _, c := range line {
				if !isBase64(c) {
					return nil, fmt.Errorf("%w: line %d: character %q is not base64", ErrMalformed, i+1, c)
				}
			}
			body = append(body, line...)
		case 2:
			if len(bytes.TrimLeft(line, " \t")) != 0 {
				return nil, fmt.Errorf("%w: line %d: text after %q", ErrMalformed, i+1, armorEnd)
			}
		}
	}
	switch state {
	case 0:
		return nil, fmt.Errorf("%w: missing %q", ErrMalformed, armorBegin)
	case 1:
		return nil, fmt.Errorf("%w: missing %q", ErrMalformed, armorEnd)
	}
	blob, err := base64.StdEncoding.Strict().DecodeString(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrMalformed, err)
	}
	return blob, nil
}

func isBase64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
}
