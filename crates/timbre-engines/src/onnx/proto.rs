//! The few pieces of ONNX's protobuf encoding that timbre's load-time model edits need
//! ([`super::conv2d`], the hibari output layout): reading a message as a list of fields that
//! keep their exact bytes, and writing the fields an edit adds. timbre has no ONNX protobuf
//! bindings; an edit copies every field it does not touch byte for byte.

// Field numbers from onnx.proto.
pub(crate) const MODEL_GRAPH: u32 = 7;
pub(crate) const MODEL_OPSET_IMPORT: u32 = 8;
pub(crate) const OPSET_DOMAIN: u32 = 1;
pub(crate) const OPSET_VERSION: u32 = 2;
pub(crate) const GRAPH_NODE: u32 = 1;
pub(crate) const GRAPH_INITIALIZER: u32 = 5;
pub(crate) const GRAPH_INPUT: u32 = 11;
pub(crate) const GRAPH_OUTPUT: u32 = 12;
pub(crate) const GRAPH_VALUE_INFO: u32 = 13;
pub(crate) const VALUE_INFO_NAME: u32 = 1;
pub(crate) const VALUE_INFO_TYPE: u32 = 2;
pub(crate) const TYPE_TENSOR: u32 = 1;
pub(crate) const TENSOR_TYPE_ELEM: u32 = 1;
pub(crate) const TENSOR_TYPE_SHAPE: u32 = 2;
pub(crate) const SHAPE_DIM: u32 = 1;
pub(crate) const DIM_VALUE: u32 = 1;
pub(crate) const DIM_PARAM: u32 = 2;
pub(crate) const ELEM_FLOAT: u64 = 1;
pub(crate) const NODE_INPUT: u32 = 1;
pub(crate) const NODE_OUTPUT: u32 = 2;
pub(crate) const NODE_NAME: u32 = 3;
pub(crate) const NODE_OP_TYPE: u32 = 4;
pub(crate) const NODE_ATTRIBUTE: u32 = 5;
pub(crate) const NODE_DOMAIN: u32 = 7;
pub(crate) const ATTR_NAME: u32 = 1;
pub(crate) const ATTR_FLOAT: u32 = 2;
pub(crate) const ATTR_INT: u32 = 3;
pub(crate) const ATTR_GRAPH: u32 = 6;
pub(crate) const ATTR_INTS: u32 = 8;
pub(crate) const ATTR_GRAPHS: u32 = 11;
pub(crate) const ATTR_TYPE: u32 = 20;
pub(crate) const ATTR_TYPE_INTS: u64 = 7;
pub(crate) const TENSOR_DIMS: u32 = 1;
pub(crate) const TENSOR_DATA_TYPE: u32 = 2;
pub(crate) const TENSOR_FLOAT_DATA: u32 = 4;
pub(crate) const TENSOR_NAME: u32 = 8;
pub(crate) const TENSOR_RAW_DATA: u32 = 9;
pub(crate) const TENSOR_INT64: u64 = 7;

/// Wire types.
pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const I32: u8 = 5;

/// One field of a message: its number, wire type, value and the exact bytes it was read from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field<'a> {
    pub num: u32,
    pub wire: u8,
    /// The varint value (wire type 0).
    pub int: u64,
    /// The payload of a length-delimited field (wire type 2).
    pub bytes: &'a [u8],
    /// Key and value as they were encoded.
    pub raw: &'a [u8],
}

pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
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

pub(crate) fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, String> {
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

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_key(out: &mut Vec<u8>, num: u32, wire: u8) {
    put_varint(out, (u64::from(num) << 3) | u64::from(wire));
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, num: u32, bytes: &[u8]) {
    put_key(out, num, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn put_int(out: &mut Vec<u8>, num: u32, v: u64) {
    put_key(out, num, VARINT);
    put_varint(out, v);
}

/// A repeated int64 field, packed or not.
pub(crate) fn ints(fs: &[Field<'_>], num: u32) -> Result<Vec<i64>, String> {
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

pub(crate) fn put_ints(out: &mut Vec<u8>, num: u32, values: &[i64]) {
    let mut packed = Vec::new();
    for v in values {
        put_varint(&mut packed, *v as u64);
    }
    put_bytes(out, num, &packed);
}

pub(crate) fn string(fs: &[Field<'_>], num: u32) -> Result<String, String> {
    match fs.iter().rev().find(|f| f.num == num && f.wire == LEN) {
        Some(f) => String::from_utf8(f.bytes.to_vec()).map_err(|_| format!("field {num} is not UTF-8")),
        None => Ok(String::new()),
    }
}

pub(crate) fn strings(fs: &[Field<'_>], num: u32) -> Result<Vec<String>, String> {
    fs.iter()
        .filter(|f| f.num == num && f.wire == LEN)
        .map(|f| String::from_utf8(f.bytes.to_vec()).map_err(|_| format!("field {num} is not UTF-8")))
        .collect()
}

pub(crate) fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attributes: &[Vec<u8>]) -> Vec<u8> {
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

/// An initializer's `TensorProto`: `dims` (none for a scalar), element type and little-endian
/// `raw` data.
pub(crate) fn raw_tensor(name: &str, dims: &[i64], data_type: u64, raw: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    if !dims.is_empty() {
        put_ints(&mut t, TENSOR_DIMS, dims);
    }
    put_int(&mut t, TENSOR_DATA_TYPE, data_type);
    put_bytes(&mut t, TENSOR_NAME, name.as_bytes());
    put_bytes(&mut t, TENSOR_RAW_DATA, raw);
    t
}

pub(crate) fn ints_attribute(name: &str, values: &[i64]) -> Vec<u8> {
    let mut a = Vec::new();
    put_bytes(&mut a, ATTR_NAME, name.as_bytes());
    put_ints(&mut a, ATTR_INTS, values);
    put_int(&mut a, ATTR_TYPE, ATTR_TYPE_INTS);
    a
}

/// A float tensor's `ValueInfoProto` (graph input or output) from its encoded `TensorShapeProto`
/// (`None`: no declared shape, not even a rank).
pub(crate) fn float_value_info(name: &str, shape: Option<&[u8]>) -> Vec<u8> {
    let mut tensor = Vec::new();
    put_int(&mut tensor, TENSOR_TYPE_ELEM, ELEM_FLOAT);
    if let Some(shape) = shape {
        put_bytes(&mut tensor, TENSOR_TYPE_SHAPE, shape);
    }
    let mut ty = Vec::new();
    put_bytes(&mut ty, TYPE_TENSOR, &tensor);
    let mut vi = Vec::new();
    put_bytes(&mut vi, VALUE_INFO_NAME, name.as_bytes());
    put_bytes(&mut vi, VALUE_INFO_TYPE, &ty);
    vi
}

/// The model `top` (its top-level fields) with its graph replaced by `graph`, every other field
/// kept byte for byte.
pub(crate) fn with_graph(top: &[Field<'_>], graph: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(graph.len() + 1024);
    for f in top {
        if f.num == MODEL_GRAPH && f.wire == LEN {
            put_bytes(&mut out, MODEL_GRAPH, graph);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    out
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
}
