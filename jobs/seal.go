package jobs

import (
	"bytes"
	"fmt"
	"io"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Seal encrypts key material for encryptedContent: content is the value
// Apinizer wants (base64), encrypted with age to every recipient (the
// worker's; during a rotation its old and new one) and ASCII-armored. It is
// for producers: the clear material never leaves their machine.
func Seal(content string, recipients ...age.Recipient) (string, error) {
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return "", fmt.Errorf("jobs: sealing key material: %w", err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		return "", fmt.Errorf("jobs: sealing key material: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("jobs: sealing key material: %w", err)
	}
	if err := aw.Close(); err != nil {
		return "", fmt.Errorf("jobs: sealing key material: %w", err)
	}
	return buf.String(), nil
}
