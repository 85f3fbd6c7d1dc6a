//! A small model's graph read from its ONNX file — nodes in order with their integer
//! attributes, and float initializers — for the models timbre runs natively instead of through
//! ONNX Runtime (BeatNet: a call per 20 ms frame costs more in the runtime's dispatch than in
//! arithmetic). The file stays the source of the weights; a port checks the graph's shape
//! before it trusts them.

use std::collections::HashMap;

use super::proto::{
    ATTR_FLOAT, ATTR_INT, ATTR_INTS, ATTR_NAME, ELEM_FLOAT, Field, GRAPH_INITIALIZER, GRAPH_NODE, I32, LEN,
    MODEL_GRAPH, NODE_ATTRIBUTE, NODE_INPUT, NODE_OP_TYPE, NODE_OUTPUT, TENSOR_DATA_TYPE, TENSOR_DIMS,
    TENSOR_FLOAT_DATA, TENSOR_NAME, TENSOR_RAW_DATA, fields, ints, string, strings,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Every attribute's name, whatever its type, so a port can refuse options it does not know.
    pub attributes: Vec<String>,
    /// INT and INTS attributes by name (an INT as a one-element list).
    pub ints: HashMap<String, Vec<i64>>,
    pub floats: HashMap<String, f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Float initializers by name (initializers of other types are left out).
    pub initializers: HashMap<String, Tensor>,
}

impl Graph {
    pub fn read(model: &[u8]) -> Result<Self, String> {
        let top = fields(model)?;
        let graph = top.iter().find(|f| f.num == MODEL_GRAPH && f.wire == LEN).ok_or("the model has no graph")?;
        let mut out = Graph::default();
        for f in fields(graph.bytes)? {
            match f.num {
                GRAPH_NODE if f.wire == LEN => out.nodes.push(read_node(f.bytes)?),
                GRAPH_INITIALIZER if f.wire == LEN => {
                    let fs = fields(f.bytes)?;
                    if let Some(t) = read_float_tensor(&fs)? {
                        out.initializers.insert(string(&fs, TENSOR_NAME)?, t);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The nodes that are not `Constant`, `Reshape`, `Squeeze`, `Transpose`, `Slice`, `Flatten`
    /// or `Concat` — the ones that compute — by op type, in graph order.
    pub fn compute_ops(&self) -> Vec<&str> {
        const LAYOUT: [&str; 7] = ["Constant", "Reshape", "Squeeze", "Transpose", "Slice", "Flatten", "Concat"];
        self.nodes.iter().map(|n| n.op.as_str()).filter(|op| !LAYOUT.contains(op)).collect()
    }

    /// The float initializer named `name` with exactly `dims`.
    pub fn tensor(&self, name: &str, dims: &[usize]) -> Result<&Tensor, String> {
        let t = self.initializers.get(name).ok_or_else(|| format!("no float initializer `{name}`"))?;
        if t.dims != dims {
            return Err(format!("initializer `{name}` has shape {:?}, expected {dims:?}", t.dims));
        }
        Ok(t)
    }
}

fn read_node(bytes: &[u8]) -> Result<Node, String> {
    let fs = fields(bytes)?;
    let mut node = Node {
        op: string(&fs, NODE_OP_TYPE)?,
        inputs: strings(&fs, NODE_INPUT)?,
        outputs: strings(&fs, NODE_OUTPUT)?,
        attributes: Vec::new(),
        ints: HashMap::new(),
        floats: HashMap::new(),
    };
    for a in fs.iter().filter(|f| f.num == NODE_ATTRIBUTE && f.wire == LEN) {
        let afs = fields(a.bytes)?;
        let name = string(&afs, ATTR_NAME)?;
        node.attributes.push(name.clone());
        let mut values = ints(&afs, ATTR_INT)?;
        values.extend(ints(&afs, ATTR_INTS)?);
        if !values.is_empty() {
            node.ints.insert(name.clone(), values);
        }
        if let Some(f) = afs.iter().find(|f| f.num == ATTR_FLOAT && f.wire == I32) {
            node.floats.insert(name, fixed32(f));
        }
    }
    Ok(node)
}

/// The value of a fixed 32-bit field: the last four bytes of its encoding.
fn fixed32(f: &Field<'_>) -> f32 {
    let b = &f.raw[f.raw.len().saturating_sub(4)..];
    f32::from_le_bytes(b.try_into().unwrap_or([0; 4]))
}

fn read_float_tensor(fs: &[Field<'_>]) -> Result<Option<Tensor>, String> {
    let elem = fs.iter().rev().find(|f| f.num == TENSOR_DATA_TYPE).map_or(0, |f| f.int);
    if elem != ELEM_FLOAT {
        return Ok(None);
    }
    let dims = ints(fs, TENSOR_DIMS)?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut data = Vec::new();
    for f in fs {
        match (f.num, f.wire) {
            // raw_data, or packed float_data: little-endian f32s either way.
            (TENSOR_RAW_DATA | TENSOR_FLOAT_DATA, LEN) => {
                data.extend(f.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            }
            (TENSOR_FLOAT_DATA, I32) => data.push(fixed32(f)),
            _ => {}
        }
    }
    let expected: usize = dims.iter().product();
    if data.len() != expected {
        return Err(format!("initializer has {} values for shape {dims:?}", data.len()));
    }
    Ok(Some(Tensor { dims, data }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::proto::{put_bytes, put_int, put_ints, put_key};
    use super::*;

    fn tensor(name: &str, dims: &[i64], values: &[f32], raw: bool) -> Vec<u8> {
        let mut t = Vec::new();
        put_ints(&mut t, TENSOR_DIMS, dims);
        put_int(&mut t, TENSOR_DATA_TYPE, ELEM_FLOAT);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        put_bytes(&mut t, if raw { TENSOR_RAW_DATA } else { TENSOR_FLOAT_DATA }, &bytes);
        put_bytes(&mut t, TENSOR_NAME, name.as_bytes());
        t
    }

    #[test]
    fn reads_nodes_attributes_and_both_float_encodings() {
        let mut alpha = Vec::new();
        put_bytes(&mut alpha, ATTR_NAME, b"alpha");
        put_key(&mut alpha, ATTR_FLOAT, I32);
        alpha.extend_from_slice(&0.5f32.to_le_bytes());
        let mut size = Vec::new();
        put_bytes(&mut size, ATTR_NAME, b"hidden_size");
        put_int(&mut size, ATTR_INT, 150);
        let conv = super::super::proto::node(
            "Conv",
            "c",
            &["x", "w"],
            &["y"],
            &[super::super::proto::ints_attribute("kernel_shape", &[10]), alpha, size],
        );
        let mut g = Vec::new();
        put_bytes(&mut g, GRAPH_NODE, &conv);
        put_bytes(&mut g, GRAPH_NODE, &super::super::proto::node("Reshape", "r", &["y"], &["z"], &[]));
        put_bytes(&mut g, GRAPH_INITIALIZER, &tensor("w", &[2, 1, 2], &[1.0, -2.0, 3.5, 4.0], true));
        put_bytes(&mut g, GRAPH_INITIALIZER, &tensor("b", &[2], &[0.25, 8.0], false));
        let mut model = Vec::new();
        put_bytes(&mut model, MODEL_GRAPH, &g);

        let graph = Graph::read(&model).unwrap();
        assert_eq!(graph.compute_ops(), ["Conv"]);
        let n = &graph.nodes[0];
        assert_eq!((n.inputs.clone(), n.outputs.clone()), (vec!["x".into(), "w".into()], vec!["y".into()]));
        assert_eq!(n.attributes, ["kernel_shape", "alpha", "hidden_size"]);
        assert_eq!(n.ints["kernel_shape"], [10]);
        assert_eq!(n.ints["hidden_size"], [150]);
        assert_eq!(n.floats["alpha"], 0.5);
        assert_eq!(graph.tensor("w", &[2, 1, 2]).unwrap().data, [1.0, -2.0, 3.5, 4.0]);
        assert_eq!(graph.tensor("b", &[2]).unwrap().data, [0.25, 8.0]);
        assert!(graph.tensor("w", &[4]).is_err(), "shape is checked");
        assert!(graph.tensor("nope", &[1]).is_err());
    }
}
