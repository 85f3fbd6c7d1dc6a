//! Rewrites an ONNX model's 1-D convolutions as 2-D ones over a height of 1.
//!
//! ONNX Runtime's CPU provider runs a 1-D `Conv` as im2col + GEMM, but has direct NCHWc kernels
//! (its layout optimization, part of the level timbre sessions use) for 2-D ones. Piper's VITS
//! decoder is a stack of 1-D convolutions (they take ~80% of a sentence's time), so the same
//! weights run as `Unsqueeze → Conv 2-D (kernel 1×k) → Squeeze` make a sentence ~10% faster on
//! one thread. The arithmetic is the same convolution: the rewritten model's audio matches the
//! original's to float rounding (tests/tts_reference.rs).
//!
//! The model is edited at the protobuf wire level (timbre has no ONNX protobuf bindings, and
//! only a handful of fields are touched): every field not named here is copied byte for byte.

use std::collections::{HashMap, HashSet};

// Field numbers from onnx.proto.
const MODEL_GRAPH: u32 = 7;
const MODEL_OPSET_IMPORT: u32 = 8;
const OPSET_DOMAIN: u32 = 1;
const OPSET_VERSION: u32 = 2;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const VALUE_INFO_NAME: u32 = 1;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const NODE_DOMAIN: u32 = 7;
const ATTR_NAME: u32 = 1;
const ATTR_GRAPH: u32 = 6;
const ATTR_INTS: u32 = 8;
const ATTR_GRAPHS: u32 = 11;
const ATTR_TYPE: u32 = 20;
const ATTR_TYPE_INTS: u64 = 7;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_NAME: u32 = 8;
const TENSOR_RAW_DATA: u32 = 9;
const TENSOR_INT64: u64 = 7;

/// Wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// One field of a message: its number, wire type, value and the exact bytes it was read from.
#[derive(Clone, Copy, Debug)]
struct Field<'a> {
    num: u32,
    wire: u8,
    /// The varint value (wire type 0).
    int: u64,
    /// The payload of a length-delimited field (wire type 2).
    bytes: &'a [u8],
    /// Key and value as they were encoded.
    raw: &'a [u8],
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let key = read_varint(buf, &mut pos)?;
        let num = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        let wire = (key & 7) as u8;
        let (mut int, mut bytes) = (0, &buf[0..0]);
        match wire {
            VARINT => int = read_varint(buf, &mut pos)?,
            I64 => pos += 8,
            I32 => pos += 4,
            LEN => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).map_err(|_| "length out of range")?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len()).ok_or("truncated field")?;
                bytes = &buf[pos..end];
                pos = end;
            }
            other => return Err(format!("unsupported wire type {other}")),
        }
        if pos > buf.len() {
            return Err("truncated field".into());
        }
        out.push(Field { num, wire, int, bytes, raw: &buf[start..pos] });
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, num: u32, wire: u8) {
    put_varint(out, (u64::from(num) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, num: u32, bytes: &[u8]) {
    put_key(out, num, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_int(out: &mut Vec<u8>, num: u32, v: u64) {
    put_key(out, num, VARINT);
    put_varint(out, v);
}

/// A repeated int64 field, packed or not.
fn ints(fs: &[Field<'_>], num: u32) -> Result<Vec<i64>, String> {
    let mut out = Vec::new();
    for f in fs.iter().filter(|f| f.num == num) {
        match f.wire {
            VARINT => out.push(f.int as i64),
            LEN => {
                let mut pos = 0;
                while pos < f.bytes.len() {
                    out.push(read_varint(f.bytes, &mut pos)? as i64);
                }
            }
            w => return Err(format!("int64 field {num} with wire type {w}")),
        }
    }
    Ok(out)
}

fn put_ints(out: &mut Vec<u8>, num: u32, values: &[i64]) {
    let mut packed = Vec::new();
    for v in values {
        put_varint(&mut packed, *v as u64);
    }
    put_bytes(out, num, &packed);
}

fn string(fs: &[Field<'_>], num: u32) -> Result<String, String> {
    match fs.iter().rev().find(|f| f.num == num && f.wire == LEN) {
        Some(f) => String::from_utf8(f.bytes.to_vec()).map_err(|_| format!("field {num} is not UTF-8")),
        None => Ok(String::new()),
    }
}

fn strings(fs: &[Field<'_>], num: u32) -> Result<Vec<String>, String> {
    fs.iter()
        .filter(|f| f.num == num && f.wire == LEN)
        .map(|f| String::from_utf8(f.bytes.to_vec()).map_err(|_| format!("field {num} is not UTF-8")))
        .collect()
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attributes: &[Vec<u8>]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        put_bytes(&mut n, NODE_INPUT, i.as_bytes());
    }
    for o in outputs {
        put_bytes(&mut n, NODE_OUTPUT, o.as_bytes());
    }
    put_bytes(&mut n, NODE_NAME, name.as_bytes());
    put_bytes(&mut n, NODE_OP_TYPE, op.as_bytes());
    for a in attributes {
        put_bytes(&mut n, NODE_ATTRIBUTE, a);
    }
    n
}

fn ints_attribute(name: &str, values: &[i64]) -> Vec<u8> {
    let mut a = Vec::new();
    put_bytes(&mut a, ATTR_NAME, name.as_bytes());
    put_ints(&mut a, ATTR_INTS, values);
    put_int(&mut a, ATTR_TYPE, ATTR_TYPE_INTS);
    a
}

/// A 1-D convolution attribute for its 2-D form: spatial lists get the unit height in front.
fn widen_attribute(raw: &[u8]) -> Result<Vec<u8>, String> {
    let fs = fields(raw)?;
    let name = string(&fs, ATTR_NAME)?;
    let values = ints(&fs, ATTR_INTS)?;
    let widened = match name.as_str() {
        "kernel_shape" | "strides" | "dilations" | "output_shape" if values.len() == 1 => vec![1, values[0]],
        "output_padding" if values.len() == 1 => vec![0, values[0]],
        "pads" if values.len() == 2 => vec![0, values[0], 0, values[1]],
        "kernel_shape" | "strides" | "dilations" | "output_shape" | "output_padding" | "pads" => {
            return Err(format!("`{name}` has {} values for a 1-D convolution", values.len()));
        }
        _ => return Ok(raw.to_vec()),
    };
    Ok(ints_attribute(&name, &widened))
}

/// How many convolutions [`conv1d_as_2d`] rewrote, and the model.
pub struct Rewritten {
    pub model: Vec<u8>,
    pub convolutions: usize,
}

/// The model with each 1-D `Conv`/`ConvTranspose` whose weight is an initializer used only as
/// convolution weights turned into its 2-D equivalent (see the module docs).
pub fn conv1d_as_2d(model: &[u8]) -> Result<Rewritten, String> {
    let top = fields(model)?;
    let graph = top.iter().find(|f| f.num == MODEL_GRAPH && f.wire == LEN).ok_or("the model has no graph")?;
    let opset = top
        .iter()
        .filter(|f| f.num == MODEL_OPSET_IMPORT && f.wire == LEN)
        .map(|f| fields(f.bytes))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .filter(|fs| matches!(string(fs, OPSET_DOMAIN).as_deref(), Ok("" | "ai.onnx")))
        .find_map(|fs| fs.iter().find(|f| f.num == OPSET_VERSION).map(|f| f.int))
        .ok_or("the model imports no ONNX opset")?;
    let graph_fields = fields(graph.bytes)?;

    // 3-D initializers, and which of them only ever feed convolutions as their weight.
    let mut dims: HashMap<String, Vec<i64>> = HashMap::new();
    for f in graph_fields.iter().filter(|f| f.num == GRAPH_INITIALIZER && f.wire == LEN) {
        let t = fields(f.bytes)?;
        let d = ints(&t, TENSOR_DIMS)?;
        if d.len() == 3 {
            dims.insert(string(&t, TENSOR_NAME)?, d);
        }
    }
    let mut weights: HashSet<String> = dims.keys().cloned().collect();
    // An initializer that is also a graph input declares its 3-D shape there: leave it.
    for f in graph_fields.iter().filter(|f| f.num == GRAPH_INPUT && f.wire == LEN) {
        weights.remove(&string(&fields(f.bytes)?, VALUE_INFO_NAME)?);
    }
    let mut nodes = Vec::new();
    for f in graph_fields.iter().filter(|f| f.num == GRAPH_NODE && f.wire == LEN) {
        let n = fields(f.bytes)?;
        // Subgraphs (If, Loop, Scan) may use a weight where this pass does not look: leave the
        // model as it is.
        for a in n.iter().filter(|a| a.num == NODE_ATTRIBUTE && a.wire == LEN) {
            if fields(a.bytes)?.iter().any(|af| matches!(af.num, ATTR_GRAPH | ATTR_GRAPHS)) {
                return Ok(Rewritten { model: model.to_vec(), convolutions: 0 });
            }
        }
        let (op, domain, inputs) = (string(&n, NODE_OP_TYPE)?, string(&n, NODE_DOMAIN)?, strings(&n, NODE_INPUT)?);
        let conv = matches!(op.as_str(), "Conv" | "ConvTranspose") && matches!(domain.as_str(), "" | "ai.onnx");
        for (i, input) in inputs.iter().enumerate() {
            if !(conv && i == 1) {
                weights.remove(input);
            }
        }
        nodes.push((n, op, inputs, conv));
    }

    let axes = "timbre_conv2d_axes";
    let mut graph_out = Vec::with_capacity(graph.bytes.len() + 64 * 1024);
    let mut converted = 0;
    let mut node_iter = nodes.into_iter();
    for f in &graph_fields {
        match f.num {
            GRAPH_NODE if f.wire == LEN => {
                let Some((n, op, inputs, conv)) = node_iter.next() else { return Err("node count changed".into()) };
                if !(conv && inputs.len() >= 2 && weights.contains(&inputs[1])) {
                    graph_out.extend_from_slice(f.raw);
                    continue;
                }
                let outputs = strings(&n, NODE_OUTPUT)?;
                let [output] = outputs.as_slice() else { return Err(format!("{op} with {} outputs", outputs.len())) };
                let name = string(&n, NODE_NAME)?;
                let x4 = format!("{}__timbre2d_in{converted}", inputs[0]);
                let y4 = format!("{output}__timbre2d_out{converted}");
                let axes_attr = [ints_attribute("axes", &[2])];
                let (axes_inputs, axes_attrs): (Vec<&str>, &[Vec<u8>]) =
                    if opset >= 13 { (vec![axes], &[]) } else { (vec![], &axes_attr) };
                let unsqueeze_in: Vec<&str> = [inputs[0].as_str()].into_iter().chain(axes_inputs.clone()).collect();
                put_bytes(
                    &mut graph_out,
                    GRAPH_NODE,
                    &node("Unsqueeze", &format!("{name}/timbre2d_unsqueeze"), &unsqueeze_in, &[&x4], axes_attrs),
                );
                // The convolution itself: same fields, the first input and output renamed and
                // the spatial attributes widened.
                let mut c = Vec::with_capacity(f.bytes.len() + 16);
                let mut input_index = 0;
                for nf in &n {
                    match nf.num {
                        NODE_INPUT => {
                            let i = if input_index == 0 { x4.as_str() } else { inputs[input_index].as_str() };
                            put_bytes(&mut c, NODE_INPUT, i.as_bytes());
                            input_index += 1;
                        }
                        NODE_OUTPUT => put_bytes(&mut c, NODE_OUTPUT, y4.as_bytes()),
                        NODE_ATTRIBUTE => put_bytes(&mut c, NODE_ATTRIBUTE, &widen_attribute(nf.bytes)?),
                        _ => c.extend_from_slice(nf.raw),
                    }
                }
                put_bytes(&mut graph_out, GRAPH_NODE, &c);
                let squeeze_in: Vec<&str> = [y4.as_str()].into_iter().chain(axes_inputs).collect();
                put_bytes(
                    &mut graph_out,
                    GRAPH_NODE,
                    &node("Squeeze", &format!("{name}/timbre2d_squeeze"), &squeeze_in, &[output], axes_attrs),
                );
                converted += 1;
            }
            GRAPH_INITIALIZER if f.wire == LEN => {
                let t = fields(f.bytes)?;
                let name = string(&t, TENSOR_NAME)?;
                match dims.get(&name).filter(|_| weights.contains(&name)) {
                    Some(d) => {
                        // [out, in/groups, k] → [out, in/groups, 1, k]: the data layout is unchanged.
                        let mut w = Vec::with_capacity(f.bytes.len() + 8);
                        put_ints(&mut w, TENSOR_DIMS, &[d[0], d[1], 1, d[2]]);
                        for tf in t.iter().filter(|tf| tf.num != TENSOR_DIMS) {
                            w.extend_from_slice(tf.raw);
                        }
                        put_bytes(&mut graph_out, GRAPH_INITIALIZER, &w);
                    }
                    None => graph_out.extend_from_slice(f.raw),
                }
            }
            _ => graph_out.extend_from_slice(f.raw),
        }
    }
    if converted == 0 {
        return Ok(Rewritten { model: model.to_vec(), convolutions: 0 });
    }
    if opset >= 13 {
        let mut t = Vec::new();
        put_ints(&mut t, TENSOR_DIMS, &[1]);
        put_int(&mut t, TENSOR_DATA_TYPE, TENSOR_INT64);
        put_bytes(&mut t, TENSOR_NAME, axes.as_bytes());
        put_bytes(&mut t, TENSOR_RAW_DATA, &2i64.to_le_bytes());
        put_bytes(&mut graph_out, GRAPH_INITIALIZER, &t);
    }
    let mut out = Vec::with_capacity(graph_out.len() + 1024);
    for f in &top {
        if f.num == MODEL_GRAPH && f.wire == LEN {
            put_bytes(&mut out, MODEL_GRAPH, &graph_out);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    Ok(Rewritten { model: out, convolutions: converted })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX, (-5i64) as u64] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut pos = 0;
            assert_eq!(read_varint(&b, &mut pos).unwrap(), v);
            assert_eq!(pos, b.len());
        }
        assert!(read_varint(&[0x80], &mut 0).is_err(), "truncated");
    }

    #[test]
    fn attributes_are_widened() {
        let widened = |name: &str, v: &[i64]| {
            let a = widen_attribute(&ints_attribute(name, v)).unwrap();
            ints(&fields(&a).unwrap(), ATTR_INTS).unwrap()
        };
        assert_eq!(widened("kernel_shape", &[7]), vec![1, 7]);
        assert_eq!(widened("dilations", &[3]), vec![1, 3]);
        assert_eq!(widened("pads", &[2, 3]), vec![0, 2, 0, 3]);
        assert_eq!(widened("output_padding", &[1]), vec![0, 1]);
        assert_eq!(widened("group", &[4]), vec![4], "other attributes are copied");
        assert!(widen_attribute(&ints_attribute("pads", &[1, 1, 1, 1])).is_err(), "already 2-D");
    }

    #[test]
    fn not_a_model_is_an_error() {
        assert!(conv1d_as_2d(&[0xff, 0xff]).is_err());
        assert!(conv1d_as_2d(&[]).is_err(), "no graph");
    }
}
