// Command goflate writes Go's compress/flate raw deflate stream of stdin to
// stdout: `goflate LEVEL [CHUNK]`, level -2 to 9, the input handed to the
// writer CHUNK bytes per Write (0 or absent: one Write of everything; a
// negative CHUNK: pseudo-random sizes of 1 to 100,000 bytes, seeded by it),
// then Close. With `goflate -gzip LEVEL`, a gzip member (compress/gzip) instead.
// Ferry's tests build it (`go build`, no network) to compare encoder 3 with
// the real thing.
package main

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"io"
	"os"
	"strconv"
)

func main() {
	args := os.Args[1:]
	gz := false
	if len(args) > 0 && args[0] == "-gzip" {
		gz = true
		args = args[1:]
	}
	level, err := strconv.Atoi(args[0])
	if err != nil {
		panic(err)
	}
	chunk := 0
	if len(args) > 1 {
		if chunk, err = strconv.Atoi(args[1]); err != nil {
			panic(err)
		}
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	var w io.WriteCloser
	if gz {
		w, err = gzip.NewWriterLevel(out, level)
	} else {
		w, err = flate.NewWriter(out, level)
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
