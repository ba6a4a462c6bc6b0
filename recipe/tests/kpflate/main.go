// Command kpflate writes what klauspost/compress and klauspost/pgzip make of
// stdin to stdout: `kpflate MODE LEVEL [CHUNK]`, MODE one of
//
//	pgzip  a gzip member by pgzip.NewWriterLevel (podman's, skopeo's layers)
//	gzip   a gzip member by klauspost's compress/gzip.NewWriterLevel
//	flate  a raw deflate stream by klauspost's flate.NewWriter
//
// LEVEL -1 (default) or 1 to 9; the input is handed over CHUNK bytes per
// Write (0 or absent: one Write; negative: pseudo-random sizes of 1 to
// 100,000 bytes seeded by it), then Close. Ferry's tests build it in GOPATH
// mode against Debian's packages (no network) to compare encoders 5 and 7
// with the real thing.
package main

import (
	"bufio"
	"io"
	"os"
	"strconv"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"
)

func main() {
	args := os.Args[1:]
	mode := args[0]
	level, err := strconv.Atoi(args[1])
	if err != nil {
		panic(err)
	}
	chunk := 0
	if len(args) > 2 {
		if chunk, err = strconv.Atoi(args[2]); err != nil {
			panic(err)
		}
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	var w io.WriteCloser
	switch mode {
	case "pgzip":
		w, err = pgzip.NewWriterLevel(out, level)
	case "gzip":
		w, err = gzip.NewWriterLevel(out, level)
	case "flate":
		w, err = flate.NewWriter(out, level)
	default:
		panic("unknown mode " + mode)
	}
	if err != nil {
		panic(err)
	}
	seed := uint64(0)
	if chunk < 0 {
		seed = uint64(-chunk)
	} else if chunk == 0 {
		chunk = len(in) + 1
	}
	for len(in) > 0 {
		n := chunk
		if seed != 0 {
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			n = 1 + int(seed%100000)
		}
		if n > len(in) {
			n = len(in)
		}
		if _, err := w.Write(in[:n]); err != nil {
			panic(err)
		}
		in = in[n:]
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	if err := out.Flush(); err != nil {
		panic(err)
	}
}
