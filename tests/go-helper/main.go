// The Go side of tests/tests/go.rs and tests/bench/go.sh, built in GOPATH mode
// over Debian's golang-golang-x-mod-dev (GO111MODULE=off GOPATH=/usr/share/gocode).
package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	modzip "golang.org/x/mod/zip"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func base(dir, path, vers string) string {
	ep, err := module.EscapePath(path)
	must(err)
	ev, err := module.EscapeVersion(vers)
	must(err)
	return filepath.Join(dir, ep, "@v", ev)
}

func pack(dir, path, vers, src string) {
	b := base(dir, path, vers)
	must(os.MkdirAll(filepath.Dir(b), 0o755))
	f, err := os.Create(b + ".zip")
	must(err)
	must(modzip.CreateFromDir(f, module.Version{Path: path, Version: vers}, src))
	must(f.Close())
	mod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	must(err)
	must(os.WriteFile(b+".mod", mod, 0o644))
	info := fmt.Sprintf("{\"Version\":%q,\"Time\":\"2026-01-01T00:00:00Z\"}\n", vers)
	must(os.WriteFile(b+".info", []byte(info), 0o644))
	list := filepath.Join(filepath.Dir(b), "list")
	old, _ := os.ReadFile(list)
	if !strings.Contains(string(old), vers+"\n") {
		must(os.WriteFile(list, append(old, []byte(vers+"\n")...), 0o644))
	}
}

// gosum returns a version's go.sum lines, hashed as the go command hashes.
func gosum(dir string) func(path, vers string) ([]byte, error) {
	return func(path, vers string) ([]byte, error) {
		b := base(dir, path, vers)
		zh, err := dirhash.HashZip(b+".zip", dirhash.Hash1)
		if err != nil {
			return nil, err
		}
		mod, err := os.ReadFile(b + ".mod")
		if err != nil {
			return nil, err
		}
		mh, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(mod)), nil
		})
		if err != nil {
			return nil, err
		}
		return []byte(fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, vers, zh, path, vers, mh)), nil
	}
}

func serveSumdb(dir string) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "db.test")
	must(err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	fmt.Printf("http://%s/ %s\n", l.Addr(), vkey)
	must(http.Serve(l, sumdb.NewServer(sumdb.NewTestServer(skey, gosum(dir)))))
}

func main() {
	switch os.Args[1] {
	case "pack":
		pack(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	case "sumdb":
		serveSumdb(os.Args[2])
	case "sign": // sign NAME FILE: FILE's text as a note signed by a fresh key named NAME
		skey, _, err := note.GenerateKey(rand.Reader, os.Args[2])
		must(err)
		signer, err := note.NewSigner(skey)
		must(err)
		text, err := os.ReadFile(os.Args[3])
		must(err)
		msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
		must(err)
		os.Stdout.Write(msg)
	case "sum": // sum PROXYDIR MODULE VERSION: its go.sum lines
		b, err := gosum(os.Args[2])(os.Args[3], os.Args[4])
		must(err)
		os.Stdout.Write(b)
	}
}
