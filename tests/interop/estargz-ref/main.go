// SPDX-License-Identifier: Apache-2.0
//
// estargz-ref: the reference implementation (containerd/stargz-snapshotter's
// estargz package, built from Debian's packaged sources) driven from the
// command line, so lazypull's tests can check our blobs with the reader the
// rest of the ecosystem uses, and the benchmark can time the reference
// converter on the same input. It is a test tool: it trusts its arguments and
// prefers failing loudly over recovering.
//
//	estargz-ref verify BLOB TOC_DIGEST
//	    Opens BLOB (eStargz, legacy stargz or zstd:chunked) with estargz.Open,
//	    checks the TOC against TOC_DIGEST (VerifyTOC), then reads every regular
//	    file through the reference reader, checking every chunk against its
//	    chunkDigest and the whole file against its digest, and prints
//	    "path sha256:hex" per regular file (hardlinks resolved, landmark and
//	    whiteout files included), sorted bytewise. Exit 1 on any mismatch.
//
//	estargz-ref convert [--level N] [--chunk-size N] [--zstd] [--prioritize FILE] IN OUT
//	    Builds OUT from IN (tar, tar.gz or tar.zst) with estargz.Build and
//	    prints toc-digest=, diff-id=, size= and seconds= one per line.
//
// Build offline: GO111MODULE=off GOPATH=/usr/share/gocode go build (see
// tests/interop/build.sh).
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage:
  estargz-ref verify BLOB TOC_DIGEST
  estargz-ref convert [--level N] [--chunk-size N] [--zstd] [--prioritize FILE] IN OUT
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "verify":
		err = cmdVerify(os.Args[2:])
	case "convert":
		err = cmdConvert(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "estargz-ref %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// fileDigest reads the regular file ent (hardlinks already resolved) chunk by
// chunk through the reference reader, verifies each chunk with the verifier
// VerifyTOC returned, and returns the digest of the whole file.
func fileDigest(r *estargz.Reader, v estargz.TOCEntryVerifier, ent *estargz.TOCEntry) (digest.Digest, error) {
	sr, err := r.OpenFile(ent.Name)
	if err != nil {
		return "", err
	}
	whole := sha256.New()
	var buf []byte
	for off := int64(0); off < ent.Size; {
		// Chunks are keyed by the source entry's name, not a hardlink's.
		ce, ok := r.ChunkEntryForOffset(ent.Name, off)
		if !ok {
			return "", fmt.Errorf("%s: no chunk at offset %d", ent.Name, off)
		}
		if ce.ChunkOffset != off || ce.ChunkSize <= 0 || off+ce.ChunkSize > ent.Size {
			return "", fmt.Errorf("%s: chunk at %d has offset %d size %d (file size %d)",
				ent.Name, off, ce.ChunkOffset, ce.ChunkSize, ent.Size)
		}
		if int64(cap(buf)) < ce.ChunkSize {
			buf = make([]byte, ce.ChunkSize)
		}
		b := buf[:ce.ChunkSize]
		if n, err := sr.ReadAt(b, off); int64(n) != ce.ChunkSize {
			return "", fmt.Errorf("%s: read chunk at %d: got %d of %d bytes: %v",
				ent.Name, off, n, ce.ChunkSize, err)
		}
		cv, err := v.Verifier(ce)
		if err != nil {
			return "", fmt.Errorf("%s: chunk at %d: %v", ent.Name, off, err)
		}
		cv.Write(b)
		if !cv.Verified() {
			return "", fmt.Errorf("%s: chunk at file offset %d (blob offset %d): digest mismatch",
				ent.Name, off, ce.Offset)
		}
		whole.Write(b)
		off += ce.ChunkSize
	}
	d := digest.NewDigest(digest.SHA256, whole)
	if ent.Digest != "" && ent.Digest != d.String() {
		return "", fmt.Errorf("%s: file digest %s, TOC says %s", ent.Name, d, ent.Digest)
	}
	return d, nil
}

func cmdVerify(args []string) error {
	if len(args) != 2 {
		usage()
	}
	want, err := digest.Parse(strings.TrimSpace(args[1]))
	if err != nil {
		return fmt.Errorf("bad TOC digest %q: %v", args[1], err)
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// gzip decompressors are always tried first; zstd:chunked is added so
	// one command checks both formats.
	r, err := estargz.Open(io.NewSectionReader(f, 0, st.Size()),
		estargz.WithDecompressors(new(zstdchunked.Decompressor)))
	if err != nil {
		return fmt.Errorf("open %s: %v", args[0], err)
	}
	v, err := r.VerifyTOC(want)
	if err != nil {
		return fmt.Errorf("%s: %v", args[0], err)
	}

	type line struct{ path, dgst string }
	var lines []line
	var walk func(dir string, e *estargz.TOCEntry) error
	walk = func(dir string, e *estargz.TOCEntry) error {
		var werr error
		e.ForeachChild(func(base string, c *estargz.TOCEntry) bool {
			p := path.Join(dir, base)
			switch c.Type {
			case "dir":
				werr = walk(p, c)
			case "reg":
				var d digest.Digest
				d, werr = fileDigest(r, v, c)
				lines = append(lines, line{p, d.String()})
			}
			return werr == nil
		})
		return werr
	}
	root, ok := r.Lookup("")
	if !ok {
		return errors.New("no root directory in TOC")
	}
	if err := walk("", root); err != nil {
		return err
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].path < lines[j].path })
	w := bufio.NewWriter(os.Stdout)
	for _, l := range lines {
		fmt.Fprintf(w, "%s %s\n", l.path, l.dgst)
	}
	return w.Flush()
}

// zstdCompression pairs the zstd:chunked compressor and decompressor into the
// estargz.Compression that Build wants (as ctr-remote does).
type zstdCompression struct {
	*zstdchunked.Compressor
	*zstdchunked.Decompressor
}

func cmdConvert(args []string) error {
	fs := flag.NewFlagSet("convert", flag.ExitOnError)
	level := fs.Int("level", 9, "gzip level (or zstd level with --zstd)")
	chunkSize := fs.Int("chunk-size", 4<<20, "chunk size in bytes")
	useZstd := fs.Bool("zstd", false, "write zstd:chunked instead of eStargz")
	prio := fs.String("prioritize", "", "file listing prioritised paths, one a line")
	fs.Parse(args)
	if fs.NArg() != 2 {
		usage()
	}
	in, out := fs.Arg(0), fs.Arg(1)

	opts := []estargz.Option{
		estargz.WithChunkSize(*chunkSize),
		estargz.WithCompressionLevel(*level),
	}
	if *useZstd {
		opts = append(opts, estargz.WithCompression(&zstdCompression{
			&zstdchunked.Compressor{CompressionLevel: zstd.EncoderLevelFromZstd(*level)},
			&zstdchunked.Decompressor{},
		}))
	}
	var missed []string
	if *prio != "" {
		b, err := os.ReadFile(*prio)
		if err != nil {
			return err
		}
		var files []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				files = append(files, l)
			}
		}
		opts = append(opts, estargz.WithPrioritizedFiles(files),
			estargz.WithAllowPrioritizeNotFound(&missed))
	}

	start := time.Now()
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	blob, err := estargz.Build(io.NewSectionReader(f, 0, st.Size()), opts...)
	if err != nil {
		return fmt.Errorf("build: %v", err)
	}
	defer blob.Close()
	// Temporary file renamed into place: no half-written OUT on failure.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".estargz-ref-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, blob)
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err != nil {
		return fmt.Errorf("write %s: %v", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	for _, m := range missed {
		fmt.Fprintf(os.Stderr, "estargz-ref convert: prioritised file not found: %s\n", m)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "toc-digest=%s\ndiff-id=%s\nsize=%d\nseconds=%.3f\n",
		blob.TOCDigest(), blob.DiffID(), n, secs)
	_, err = os.Stdout.Write(b.Bytes())
	return err
}

