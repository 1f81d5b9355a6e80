// Command noteverify is the Go side of tlog's signed-note interop test
// (tests/client/test_go_note_interop.py). It uses golang.org/x/mod/sumdb/note,
// the reference implementation of https://c2sp.org/signed-note.
//
// Usage (the note or text is read from standard input):
//
//	noteverify verify VKEY          # note.NewVerifier + note.Open; prints the text
//	noteverify sign SKEY            # note.NewSigner + note.Sign; prints the note
//	noteverify generate NAME        # note.GenerateKey; prints skey and vkey lines
//	noteverify cosignverify VKEY    # tlog-cosignature v1 (type 0x04) via note.Open;
//	                                # prints the cosigned timestamp
//
// Exit status 0 on success, 1 on a verification or format failure, 2 on misuse.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) != 3 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "verify":
		err = verify(os.Args[2])
	case "sign":
		err = sign(os.Args[2])
	case "generate":
		err = generate(os.Args[2])
	case "cosignverify":
		err = cosignVerify(os.Args[2])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "noteverify:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: noteverify verify|sign|generate|cosignverify ARG < input")
	os.Exit(2)
}

func verify(vkey string) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(n.Text)
	return err
}

func sign(skey string) error {
	s, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	text, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(msg)
	return err
}

func generate(name string) error {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return err
	}
	fmt.Println(skey)
	fmt.Println(vkey)
	return nil
}

// cosigVerifier checks tlog-cosignature v1 signatures: the signature is
// u64 big-endian timestamp || Ed25519 signature over
// "cosignature/v1\ntime <t>\n" || note text.
type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
	time uint64
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }

func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	var signed bytes.Buffer
	fmt.Fprintf(&signed, "cosignature/v1\ntime %d\n", t)
	signed.Write(msg)
	if !ed25519.Verify(v.key, signed.Bytes(), sig[8:]) {
		return false
	}
	v.time = t
	return true
}

func newCosigVerifier(vkey string) (*cosigVerifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || len(parts[1]) != 8 {
		return nil, errors.New("malformed cosigner key")
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	if len(key) != 1+ed25519.PublicKeySize || key[0] != 0x04 {
		return nil, errors.New("not an Ed25519 cosignature (type 0x04) key")
	}
	sum := sha256.Sum256(append([]byte(parts[0]+"\n"), key...))
	if binary.BigEndian.Uint32(sum[:4]) != uint32(hash) {
		return nil, errors.New("cosigner key hash mismatch")
	}
	return &cosigVerifier{name: parts[0], hash: uint32(hash), key: key[1:]}, nil
}

func cosignVerify(vkey string) error {
	v, err := newCosigVerifier(vkey)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		return err
	}
	fmt.Println(v.time)
	return nil
}
