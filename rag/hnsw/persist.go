package hnsw

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
)

// The file format, little-endian:
//
//	magic     8 bytes "GHNSWIDX"
//	version   uint32 (formatVersion)
//	dims, M, EfConstruction, EfSearch  uint32
//	seed      uint64
//	rng       uint32 length + the level generator's state (so levels go
//	          on as if the graph had never been saved)
//	nodes     uint32 n
//	entry     int64 (-1 when empty), topLevel uint32
//	n nodes   id int64, deleted uint8, level uint8, then for each level
//	          from 0: count uint16, count neighbour indexes uint32
//	n vectors dims float32 each
//	checksum  uint32, CRC-32C of everything before it
//
// Read checks every field (sizes, indexes, the checksum) so that a
// truncated or corrupt file is an error, never a panic or a graph that
// points outside itself.
const (
	magic         = "GHNSWIDX"
	formatVersion = 1
	// Bounds Read accepts, far above any real use, so that a corrupt
	// header cannot ask for absurd allocations.
	maxDims  = 1 << 15
	maxM     = 256
	maxEf    = 1 << 20
	maxNodes = math.MaxUint32 - 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat is wrapped by every error of Read about the content of the
// file (rather than about reading it).
var ErrFormat = errors.New("hnsw: bad graph file")

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteTo writes the graph in the format above. It holds the read lock:
// searches go on, writers wait.
func (g *Graph) WriteTo(w io.Writer) (int64, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<16)
	crc := crc32.New(crcTable)
	out := io.MultiWriter(bw, crc)
	var buf []byte
	put32 := func(v uint32) { buf = binary.LittleEndian.AppendUint32(buf, v) }
	put64 := func(v uint64) { buf = binary.LittleEndian.AppendUint64(buf, v) }
	flush := func() error {
		_, err := out.Write(buf)
		buf = buf[:0]
		return err
	}
	rng, err := g.rng.MarshalBinary()
	if err != nil {
		return 0, err
	}
	buf = append(buf, magic...)
	put32(formatVersion)
	put32(uint32(g.dims))
	put32(uint32(g.opts.M))
	put32(uint32(g.opts.EfConstruction))
	put32(uint32(g.opts.EfSearch))
	put64(g.opts.Seed)
	put32(uint32(len(rng)))
	buf = append(buf, rng...)
	put32(uint32(len(g.ids)))
	put64(uint64(int64(g.entry)))
	put32(uint32(g.topLevel))
	for i, id := range g.ids {
		put64(uint64(id))
		del := uint8(0)
		if g.deleted[i] {
			del = 1
		}
		buf = append(buf, del, uint8(len(g.links[i])-1))
		for _, list := range g.links[i] {
			buf = binary.LittleEndian.AppendUint16(buf, uint16(len(list)))
			for _, n := range list {
				put32(n)
			}
		}
		if len(buf) > 1<<15 {
			if err := flush(); err != nil {
				return cw.n, err
			}
		}
	}
	for _, v := range g.vecs {
		for _, f := range v {
			put32(math.Float32bits(f))
		}
		if len(buf) > 1<<15 {
			if err := flush(); err != nil {
				return cw.n, err
			}
		}
	}
	if err := flush(); err != nil {
		return cw.n, err
	}
	if _, err := bw.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return cw.n, err
	}
	err = bw.Flush()
	return cw.n, err
}

// reader decodes the format, hashing what it reads; the first error
// sticks and every later read returns zeros.
type reader struct {
	r   *bufio.Reader
	crc hash.Hash32
	err error
	buf [8]byte
}

func (r *reader) read(n int) []byte {
	if r.err != nil {
		clear(r.buf[:n])
		return r.buf[:n]
	}
	if _, err := io.ReadFull(r.r, r.buf[:n]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated", ErrFormat)
		}
		r.err = err
		clear(r.buf[:n])
		return r.buf[:n]
	}
	r.crc.Write(r.buf[:n])
	return r.buf[:n]
}

func (r *reader) u8() uint8   { return r.read(1)[0] }
func (r *reader) u16() uint16 { return binary.LittleEndian.Uint16(r.read(2)) }
func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.read(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.read(8)) }

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
	}
}

// Read decodes a graph written by WriteTo. It may read past the end of
// the graph (it buffers): put the graph last in a stream.
func Read(src io.Reader) (*Graph, error) {
	r := &reader{r: bufio.NewReaderSize(src, 1<<16), crc: crc32.New(crcTable)}
	var m [8]byte
	for i := range m {
		m[i] = r.u8()
	}
	if r.err == nil && string(m[:]) != magic {
		r.fail("not a graph file")
	}
	if v := r.u32(); r.err == nil && v != formatVersion {
		r.fail("format version %d, want %d", v, formatVersion)
	}
	dims, mm, efc, efs := r.u32(), r.u32(), r.u32(), r.u32()
	seed := r.u64()
	if r.err == nil && (dims == 0 || dims > maxDims || mm < 2 || mm > maxM || efc == 0 || efc > maxEf || efs == 0 || efs > maxEf) {
		r.fail("parameters out of range (dims %d, M %d, ef %d/%d)", dims, mm, efc, efs)
	}
	rngLen := r.u32()
	if r.err == nil && rngLen > 64 {
		r.fail("generator state of %d bytes", rngLen)
	}
	if r.err != nil {
		return nil, r.err
	}
	g := New(int(dims), Options{M: int(mm), EfConstruction: int(efc), EfSearch: int(efs), Seed: seed})
	rng := make([]byte, rngLen)
	for i := range rng {
		rng[i] = r.u8()
	}
	if r.err == nil {
		if err := g.rng.UnmarshalBinary(rng); err != nil {
			r.fail("generator state: %v", err)
		}
	}
	n := r.u32()
	entry := int64(r.u64())
	top := r.u32()
	if r.err == nil && (n > maxNodes || entry < -1 || entry >= int64(n) || (entry < 0) != (n == 0) || top > maxLevel) {
		r.fail("%d nodes, entry %d at level %d", n, entry, top)
	}
	if r.err != nil {
		return nil, r.err
	}
	// Grow as nodes are read rather than trusting n for allocations.
	prealloc := min(int(n), 1<<16)
	g.ids = make([]int64, 0, prealloc)
	g.links = make([][][]uint32, 0, prealloc)
	g.deleted = make([]bool, 0, prealloc)
	for i := uint32(0); i < n && r.err == nil; i++ {
		id := int64(r.u64())
		del := r.u8()
		level := int(r.u8())
		if r.err == nil && (del > 1 || level > maxLevel) {
			r.fail("node %d: deleted %d, level %d", i, del, level)
			break
		}
		links := newLinks(level, g.opts.M)
		for l := range links {
			count := int(r.u16())
			if count > g.maxLinks(l) {
				r.fail("node %d: %d neighbours on level %d", i, count, l)
				break
			}
			for range count {
				nb := r.u32()
				if nb >= n {
					r.fail("node %d: neighbour %d of %d nodes", i, nb, n)
					break
				}
				links[l] = append(links[l], nb)
			}
		}
		g.ids = append(g.ids, id)
		g.links = append(g.links, links)
		g.deleted = append(g.deleted, del == 1)
		if del == 1 {
			g.ndel++
		} else {
			if _, dup := g.byID[id]; dup {
				r.fail("id %d twice", id)
			}
			g.byID[id] = i
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	// Neighbour lists only name nodes up to n, but a node must also
	// exist on every level it is linked on.
	for i, links := range g.links {
		for l, list := range links {
			for _, nb := range list {
				if len(g.links[nb]) <= l {
					return nil, fmt.Errorf("%w: node %d links node %d on level %d, above its level", ErrFormat, i, nb, l)
				}
			}
		}
	}
	if entry >= 0 && len(g.links[entry])-1 != int(top) {
		return nil, fmt.Errorf("%w: entry level %d, recorded %d", ErrFormat, len(g.links[entry])-1, top)
	}
	g.entry, g.topLevel = int(entry), int(top)
	if entry < 0 {
		g.topLevel = 0
	}
	// Vectors in blocks of about 1 MiB.
	block := max(1, (1<<20)/int(dims))
	g.vecs = make([][]float32, 0, len(g.ids))
	var backing []float32
	for range g.ids {
		if len(backing) == 0 {
			backing = make([]float32, block*int(dims))
		}
		v := backing[:dims:dims]
		backing = backing[dims:]
		for j := range v {
			v[j] = math.Float32frombits(r.u32())
		}
		if r.err != nil {
			return nil, r.err
		}
		g.vecs = append(g.vecs, v)
	}
	sum := r.crc.Sum32()
	stored := binary.LittleEndian.Uint32(r.read(4))
	if r.err != nil {
		return nil, r.err
	}
	if stored != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrFormat)
	}
	return g, nil
}
