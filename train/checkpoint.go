package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/nlpodyssey/spago/mat"

	"github.com/capsel/capsel/objectives"
)

// Checkpoint is everything a run needs to continue, or a model needs to be
// used: the architecture, the tokenizer, the weights, and (for a run) the
// optimizer state, the step, the configuration, the adaptive objective's
// state and the identity of the training data.
type Checkpoint struct {
	Model     ModelConfig
	Tokenizer *Tokenizer
	Tensors   []Tensor
	Run       *RunState // nil for weights only
	// Ref holds the frozen reference model's weights of a run whose
	// objective anchors to one (asft-α), in Params order without moments;
	// nil otherwise.
	Ref []Tensor

	name string // the file it was read from, for errors
}

// where names the checkpoint in errors: its file, when it was read from one.
func (ck *Checkpoint) where() string {
	if ck.name != "" {
		return ck.name + ": checkpoint"
	}
	return "checkpoint"
}

// Tensor is one parameter with its AdamW moments (nil when absent).
type Tensor struct {
	Name       string
	Rows, Cols int
	W, M, V    []float32
}

// RunState is what resuming needs beyond the weights. The data order is a
// function of Config.Seed and Step, so no random-generator state is kept
// besides them.
type RunState struct {
	Config   Config    `json:"config"`
	Step     int       `json:"step"`
	Auto     AutoState `json:"auto"`
	DataHash string    `json:"data_hash"`
	Data     DataStats `json:"data"`
}

// Checkpoint captures the run's current state. The tensors are copies.
func (t *Trainer) Checkpoint() *Checkpoint {
	ck := &Checkpoint{Model: t.model.Cfg, Tokenizer: t.tok,
		Run: &RunState{Config: t.cfg, Step: t.step, Auto: t.auto, DataHash: t.dataHash, Data: t.data}}
	for _, np := range t.params {
		sh := np.Param.Shape()
		ts := Tensor{Name: np.Name, Rows: sh[0], Cols: sh[1], W: append([]float32(nil), mat.Data[float32](np.Param)...)}
		if st, ok := np.Param.State.(*AdamState); ok && st != nil {
			ts.M = append([]float32(nil), st.M...)
			ts.V = append([]float32(nil), st.V...)
		}
		ck.Tensors = append(ck.Tensors, ts)
	}
	if t.ref != nil {
		for _, np := range t.ref.Params() {
			sh := np.Param.Shape()
			ck.Ref = append(ck.Ref, Tensor{Name: np.Name, Rows: sh[0], Cols: sh[1], W: append([]float32(nil), mat.Data[float32](np.Param)...)})
		}
	}
	return ck
}

// NewModel builds the checkpoint's model with its weights.
func (ck *Checkpoint) NewModel() (*Model, error) {
	m, err := NewModel(ck.Model, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.where(), err)
	}
	if err := ck.load(m, false); err != nil {
		return nil, err
	}
	return m, nil
}

// load copies the weights (and, with opt, the AdamW moments) into m.
func (ck *Checkpoint) load(m *Model, opt bool) error {
	ps := m.Params()
	if len(ps) != len(ck.Tensors) {
		return fmt.Errorf("%s: %d tensors for a model of %d parameters", ck.where(), len(ck.Tensors), len(ps))
	}
	for i, np := range ps {
		ts := ck.Tensors[i]
		sh := np.Param.Shape()
		if ts.Name != np.Name || ts.Rows != sh[0] || ts.Cols != sh[1] {
			return fmt.Errorf("%s: tensor %d is %s %d×%d, the model wants %s %d×%d", ck.where(), i, ts.Name, ts.Rows, ts.Cols, np.Name, sh[0], sh[1])
		}
		copy(mat.Data[float32](np.Param), ts.W)
		np.Param.State = nil
		if opt && ts.M != nil {
			np.Param.State = &AdamState{M: append([]float32(nil), ts.M...), V: append([]float32(nil), ts.V...)}
		}
	}
	return nil
}

// Resume continues the run saved in ck on the same data. It refuses data
// that differ from the run's.
func Resume(ck *Checkpoint, data []Example) (*Trainer, error) {
	if ck.Run == nil {
		return nil, errors.New("checkpoint holds weights only, no run to resume; use it with --init to start a new run")
	}
	m, err := NewModel(ck.Model, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.where(), err)
	}
	if err := ck.load(m, true); err != nil {
		return nil, err
	}
	t := &Trainer{cfg: ck.Run.Config, model: m, tok: ck.Tokenizer, step: ck.Run.Step, auto: ck.Run.Auto}
	if err := t.setup(data); err != nil {
		return nil, err
	}
	if t.obj.Adaptive() && t.auto.Measured == nil {
		t.examples = data
	}
	t.dropFlagged()
	if t.trains().Form() == objectives.FormAnchored {
		if ck.Ref == nil {
			return nil, fmt.Errorf("%s: the run trains %v, which anchors to the model it started from, and the checkpoint holds no reference weights", ck.where(), t.trains())
		}
		ref, err := NewModel(ck.Model, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ck.where(), err)
		}
		if err := (&Checkpoint{Tensors: ck.Ref, name: ck.name}).load(ref, false); err != nil {
			return nil, fmt.Errorf("reference model: %w", err)
		}
		for _, np := range ref.Params() {
			np.Param.SetRequiresGrad(false)
		}
		t.ref, t.refWS = ref, &workspace{}
	}
	if t.dataHash != ck.Run.DataHash {
		return nil, errors.New("the training data differ from the data this run started with; resume needs the same data")
	}
	return t, nil
}

// The file format, little-endian:
//
//	magic "CAPSELCK" | version uint32 | header length uint32 | header JSON
//	| tensors: W, then M and V when header says so, float32 each
//	| version 2 only: the reference model's tensors (W only), as header "ref" lists them
//	| CRC-32C (Castagnoli) of everything before it, uint32
//
// The checksum turns a truncated or corrupted file into an error. A
// checkpoint without reference weights is written as version 1, byte for
// byte as before they existed; one with them as version 2, which older
// builds refuse by its version rather than misread.
const (
	ckMagic      = "CAPSELCK"
	ckVersion    = 1
	ckVersionRef = 2
)

type ckHeader struct {
	Model     ModelConfig `json:"model"`
	Tokenizer *Tokenizer  `json:"tokenizer"`
	Run       *RunState   `json:"run,omitempty"`
	Tensors   []ckTensor  `json:"tensors"`
	Ref       []ckTensor  `json:"ref,omitempty"`
}

type ckTensor struct {
	Name string `json:"name"`
	Rows int    `json:"rows"`
	Cols int    `json:"cols"`
	Opt  bool   `json:"opt"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes the checkpoint in capsel's binary format.
func (ck *Checkpoint) WriteTo(w io.Writer) (int64, error) {
	h := ckHeader{Model: ck.Model, Tokenizer: ck.Tokenizer, Run: ck.Run}
	for _, ts := range ck.Tensors {
		h.Tensors = append(h.Tensors, ckTensor{ts.Name, ts.Rows, ts.Cols, ts.M != nil})
	}
	version := ckVersion
	for _, ts := range ck.Ref {
		h.Ref = append(h.Ref, ckTensor{ts.Name, ts.Rows, ts.Cols, false})
		version = ckVersionRef
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	buf.WriteString(ckMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(version))
	binary.Write(&buf, binary.LittleEndian, uint32(len(hj)))
	buf.Write(hj)
	put := func(xs []float32) {
		b := make([]byte, 4*len(xs))
		for i, x := range xs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		buf.Write(b)
	}
	for _, ts := range ck.Tensors {
		put(ts.W)
		if ts.M != nil {
			put(ts.M)
			put(ts.V)
		}
	}
	for _, ts := range ck.Ref {
		put(ts.W)
	}
	binary.Write(&buf, binary.LittleEndian, crc32.Checksum(buf.Bytes(), crcTable))
	n, err := w.Write(buf.Bytes())
	return int64(n), err
}

// ReadCheckpoint reads a checkpoint; name is used in errors.
func ReadCheckpoint(r io.Reader, name string) (*Checkpoint, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: not a usable capsel checkpoint: %s", name, fmt.Sprintf(format, a...))
	}
	if len(b) < len(ckMagic)+12 || string(b[:len(ckMagic)]) != ckMagic {
		return nil, bad("missing the CAPSELCK header (is it a checkpoint?)")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, bad("checksum mismatch: the file is truncated or corrupted (%d bytes)", len(b))
	}
	p := len(ckMagic)
	version := binary.LittleEndian.Uint32(b[p:])
	if version != ckVersion && version != ckVersionRef {
		return nil, bad("format version %d; this build reads versions %d and %d", version, ckVersion, ckVersionRef)
	}
	hl := int(binary.LittleEndian.Uint32(b[p+4:]))
	p += 8
	if hl > len(body)-p {
		return nil, bad("header length %d exceeds the file", hl)
	}
	var h ckHeader
	if err := json.Unmarshal(body[p:p+hl], &h); err != nil {
		return nil, bad("header: %v", err)
	}
	p += hl
	if h.Tokenizer == nil {
		return nil, bad("no tokenizer")
	}
	if err := h.Model.Validate(); err != nil {
		return nil, bad("model: %v", err)
	}
	if h.Tokenizer.Size() != h.Model.Vocab {
		return nil, bad("tokenizer of %d tokens for a model of %d", h.Tokenizer.Size(), h.Model.Vocab)
	}
	ck := &Checkpoint{Model: h.Model, Tokenizer: h.Tokenizer, Run: h.Run, name: name}
	get := func(n int) ([]float32, error) {
		if n < 0 || 4*n > len(body)-p {
			return nil, bad("tensor data ends early")
		}
		xs := make([]float32, n)
		for i := range xs {
			xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[p+4*i:]))
		}
		p += 4 * n
		return xs, nil
	}
	for _, ht := range h.Tensors {
		ts := Tensor{Name: ht.Name, Rows: ht.Rows, Cols: ht.Cols}
		n := ht.Rows * ht.Cols
		if ts.W, err = get(n); err != nil {
			return nil, err
		}
		if ht.Opt {
			if ts.M, err = get(n); err != nil {
				return nil, err
			}
			if ts.V, err = get(n); err != nil {
				return nil, err
			}
		}
		ck.Tensors = append(ck.Tensors, ts)
	}
	if (version == ckVersionRef) != (len(h.Ref) > 0) {
		return nil, bad("format version %d with %d reference tensors", version, len(h.Ref))
	}
	for _, ht := range h.Ref {
		ts := Tensor{Name: ht.Name, Rows: ht.Rows, Cols: ht.Cols}
		if ts.W, err = get(ht.Rows * ht.Cols); err != nil {
			return nil, err
		}
		ck.Ref = append(ck.Ref, ts)
	}
	if p != len(body) {
		return nil, bad("%d unexpected bytes after the tensors", len(body)-p)
	}
	return ck, nil
}
