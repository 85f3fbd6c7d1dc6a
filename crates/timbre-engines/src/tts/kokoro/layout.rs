//! hibari's model ends with `head (frames × 5·601) → Transpose → Split` into the five
//! bin-major planes `lh, theta, ln, lr, phi` (`[1, 601, F]` each). ONNX Runtime spends ~8% of a
//! sentence's model time in that Transpose and Split (it copies the whole spectrum twice), and
//! the signal tail then reads the planes across frames, while it works one frame at a time.
//!
//! At load, [`frame_major`] cuts those two nodes out: the model's outputs become the head's own
//! `[1, F, 5·601]` result (named [`FRAMES`]; per frame the five parts one after another) and
//! `f0`. The arithmetic is untouched (the removed nodes only move numbers), so the tail reads
//! exactly the values it read before. Edited at the protobuf wire level like
//! [`crate::onnx::conv2d`]; a model without this exact ending is left as it is.

use crate::onnx::proto::*;

/// The output the edited model gives instead of the five planes.
pub const FRAMES: &str = "timbre_spectral_frames";
/// The planes, in the order the head's columns hold them.
pub const PLANES: [&str; 5] = ["lh", "theta", "ln", "lr", "phi"];

struct Node<'a> {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    fields: Vec<Field<'a>>,
}

fn attribute_ints(n: &Node<'_>, name: &str) -> Result<Option<Vec<i64>>, String> {
    for a in n.fields.iter().filter(|f| f.num == NODE_ATTRIBUTE && f.wire == LEN) {
        let fs = fields(a.bytes)?;
        if string(&fs, ATTR_NAME)? == name {
            let mut v = ints(&fs, ATTR_INTS)?;
            v.extend(fs.iter().filter(|f| f.num == ATTR_INT && f.wire == VARINT).map(|f| f.int as i64));
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// A graph output's declared tensor dimensions (`None` for a symbolic one), or `None` when it
/// declares no shape.
fn declared_dims(value_info: &[u8]) -> Result<Option<Vec<Option<i64>>>, String> {
    let vi = fields(value_info)?;
    let Some(ty) = vi.iter().find(|f| f.num == VALUE_INFO_TYPE && f.wire == LEN) else { return Ok(None) };
    let Some(tensor) = fields(ty.bytes)?.into_iter().find(|f| f.num == TYPE_TENSOR && f.wire == LEN) else {
        return Ok(None);
    };
    let Some(shape) = fields(tensor.bytes)?.into_iter().find(|f| f.num == TENSOR_TYPE_SHAPE && f.wire == LEN) else {
        return Ok(None);
    };
    let mut dims = Vec::new();
    for d in fields(shape.bytes)?.iter().filter(|f| f.num == SHAPE_DIM && f.wire == LEN) {
        dims.push(fields(d.bytes)?.iter().find(|f| f.num == DIM_VALUE && f.wire == VARINT).map(|f| f.int as i64));
    }
    Ok(Some(dims))
}

/// A float tensor output `[batch, frames, columns]`.
fn frames_value_info(name: &str, columns: i64) -> Vec<u8> {
    let mut shape = Vec::new();
    for (num, dim) in [(DIM_PARAM, "timbre_batch"), (DIM_PARAM, "timbre_frames")] {
        let mut d = Vec::new();
        put_bytes(&mut d, num, dim.as_bytes());
        put_bytes(&mut shape, SHAPE_DIM, &d);
    }
    let mut d = Vec::new();
    put_int(&mut d, DIM_VALUE, columns as u64);
    put_bytes(&mut shape, SHAPE_DIM, &d);
    float_value_info(name, Some(&shape))
}

/// The model with the head's frame-major spectrum as output [`FRAMES`] in place of the five
/// `[1, bins, F]` planes, or `None` when the model does not end in exactly `Transpose(0, 2, 1)
/// → Split(axis 1)` into [`PLANES`] of `bins` rows each.
pub fn frame_major(model: &[u8], bins: i64) -> Result<Option<Vec<u8>>, String> {
    let top = fields(model)?;
    let graph = top.iter().find(|f| f.num == MODEL_GRAPH && f.wire == LEN).ok_or("the model has no graph")?;
    let graph_fields = fields(graph.bytes)?;
    let mut nodes = Vec::new();
    for f in graph_fields.iter().filter(|f| f.num == GRAPH_NODE && f.wire == LEN) {
        let fs = fields(f.bytes)?;
        nodes.push(Node {
            op: string(&fs, NODE_OP_TYPE)?,
            inputs: strings(&fs, NODE_INPUT)?,
            outputs: strings(&fs, NODE_OUTPUT)?,
            fields: fs,
        });
    }
    let consumers = |name: &str| nodes.iter().filter(|n| n.inputs.iter().any(|i| i == name)).count();
    let Some(split) = nodes.iter().position(|n| n.op == "Split" && n.outputs == PLANES) else { return Ok(None) };
    if attribute_ints(&nodes[split], "axis")? != Some(vec![1]) {
        return Ok(None);
    }
    let Some(spectrum_t) = nodes[split].inputs.first() else { return Ok(None) };
    let Some(transpose) = nodes.iter().position(|n| n.op == "Transpose" && n.outputs == [spectrum_t.as_str()]) else {
        return Ok(None);
    };
    if attribute_ints(&nodes[transpose], "perm")? != Some(vec![0, 2, 1]) || consumers(spectrum_t) != 1 {
        return Ok(None);
    }
    let Some(spectrum) = nodes[transpose].inputs.first().cloned() else { return Ok(None) };
    let Some(producer) = nodes.iter().position(|n| n.outputs.contains(&spectrum)) else { return Ok(None) };
    if consumers(&spectrum) != 1 {
        return Ok(None);
    }
    // Each plane must be declared `[_, bins, _]`: then the split cut the columns into equal
    // `bins`-wide parts, which is how the tail reads a frame.
    let mut declared = 0;
    for f in graph_fields.iter().filter(|f| f.num == GRAPH_OUTPUT && f.wire == LEN) {
        let name = string(&fields(f.bytes)?, VALUE_INFO_NAME)?;
        if PLANES.contains(&name.as_str()) {
            match declared_dims(f.bytes)? {
                Some(dims) if dims.len() == 3 && dims[1] == Some(bins) => {}
                _ => return Ok(None),
            }
            declared += 1;
        }
    }
    if declared != PLANES.len() {
        return Ok(None);
    }

    let mut graph_out = Vec::with_capacity(graph.bytes.len());
    let mut node_index = 0;
    for f in &graph_fields {
        match f.num {
            GRAPH_NODE if f.wire == LEN => {
                let i = node_index;
                node_index += 1;
                if i == split || i == transpose {
                    continue;
                }
                if i != producer {
                    graph_out.extend_from_slice(f.raw);
                    continue;
                }
                let mut n = Vec::with_capacity(f.bytes.len() + FRAMES.len());
                for nf in &nodes[i].fields {
                    if nf.num == NODE_OUTPUT && nf.wire == LEN && nf.bytes == spectrum.as_bytes() {
                        put_bytes(&mut n, NODE_OUTPUT, FRAMES.as_bytes());
                    } else {
                        n.extend_from_slice(nf.raw);
                    }
                }
                put_bytes(&mut graph_out, GRAPH_NODE, &n);
            }
            GRAPH_OUTPUT if f.wire == LEN => {
                let name = string(&fields(f.bytes)?, VALUE_INFO_NAME)?;
                if name == PLANES[0] {
                    put_bytes(&mut graph_out, GRAPH_OUTPUT, &frames_value_info(FRAMES, bins * PLANES.len() as i64));
                } else if !PLANES.contains(&name.as_str()) {
                    graph_out.extend_from_slice(f.raw);
                }
            }
            // Shape annotations of the removed tensors would be stale.
            GRAPH_VALUE_INFO if f.wire == LEN => {
                let name = string(&fields(f.bytes)?, VALUE_INFO_NAME)?;
                if name != spectrum && name != *spectrum_t {
                    graph_out.extend_from_slice(f.raw);
                }
            }
            _ => graph_out.extend_from_slice(f.raw),
        }
    }
    Ok(Some(with_graph(&top, &graph_out)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn int_attribute(name: &str, v: i64) -> Vec<u8> {
        let mut a = Vec::new();
        put_bytes(&mut a, ATTR_NAME, name.as_bytes());
        put_int(&mut a, ATTR_INT, v as u64);
        a
    }

    fn output(name: &str, dim1: i64) -> Vec<u8> {
        let mut shape = Vec::new();
        for d in [None, Some(dim1), None] {
            let mut dim = Vec::new();
            match d {
                Some(v) => put_int(&mut dim, DIM_VALUE, v as u64),
                None => put_bytes(&mut dim, DIM_PARAM, b"n"),
            }
            put_bytes(&mut shape, SHAPE_DIM, &dim);
        }
        float_value_info(name, Some(&shape))
    }

    /// `x + b → Transpose → Split` into the five planes, plus an `f0` output, as hibari's graph.
    fn model(perm: &[i64], axis: i64, bins: i64) -> Vec<u8> {
        let mut g = Vec::new();
        put_bytes(&mut g, GRAPH_NODE, &node("Add", "head", &["x", "b"], &["spec"], &[]));
        put_bytes(&mut g, GRAPH_NODE, &node("Transpose", "t", &["spec"], &["spec_t"], &[ints_attribute("perm", perm)]));
        put_bytes(
            &mut g,
            GRAPH_NODE,
            &node("Split", "s", &["spec_t", "sizes"], &PLANES, &[int_attribute("axis", axis)]),
        );
        put_bytes(&mut g, GRAPH_NODE, &node("Relu", "f", &["x0"], &["f0"], &[]));
        for p in PLANES {
            put_bytes(&mut g, GRAPH_OUTPUT, &output(p, bins));
        }
        put_bytes(&mut g, GRAPH_OUTPUT, &output("f0", 7));
        let mut m = Vec::new();
        put_int(&mut m, 1, 8); // ir_version
        put_bytes(&mut m, MODEL_GRAPH, &g);
        m
    }

    struct Graph {
        nodes: Vec<(String, Vec<String>, Vec<String>)>,
        outputs: Vec<(String, Vec<Option<i64>>)>,
    }

    fn read(model: &[u8]) -> Graph {
        let top = fields(model).unwrap();
        let g = fields(top.iter().find(|f| f.num == MODEL_GRAPH).unwrap().bytes).unwrap();
        let nodes = g
            .iter()
            .filter(|f| f.num == GRAPH_NODE)
            .map(|f| {
                let n = fields(f.bytes).unwrap();
                (string(&n, NODE_OP_TYPE).unwrap(), strings(&n, NODE_INPUT).unwrap(), strings(&n, NODE_OUTPUT).unwrap())
            })
            .collect();
        let outputs = g
            .iter()
            .filter(|f| f.num == GRAPH_OUTPUT)
            .map(|f| {
                (string(&fields(f.bytes).unwrap(), VALUE_INFO_NAME).unwrap(), declared_dims(f.bytes).unwrap().unwrap())
            })
            .collect();
        Graph { nodes, outputs }
    }

    #[test]
    fn the_transpose_and_split_are_cut_out() {
        let edited = frame_major(&model(&[0, 2, 1], 1, 601), 601).unwrap().unwrap();
        let g = read(&edited);
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(ops, ["Add", "Relu"]);
        assert_eq!(g.nodes[0].2, [FRAMES], "the head writes the new output directly");
        assert_eq!(g.nodes[0].1, ["x", "b"]);
        // The new output's last dimension is the five planes side by side.
        assert_eq!(
            g.outputs,
            [(FRAMES.to_string(), vec![None, None, Some(3005)]), ("f0".to_string(), vec![None, Some(7), None])]
        );
        // Fields outside the graph are kept.
        assert_eq!(fields(&edited).unwrap()[0].raw, fields(&model(&[0, 2, 1], 1, 601)).unwrap()[0].raw);
    }

    #[test]
    fn other_endings_are_left_alone() {
        assert!(frame_major(&model(&[0, 1, 2], 1, 601), 601).unwrap().is_none(), "not a transpose of the last two");
        assert!(frame_major(&model(&[0, 2, 1], 2, 601), 601).unwrap().is_none(), "split along frames");
        assert!(frame_major(&model(&[0, 2, 1], 1, 600), 601).unwrap().is_none(), "planes of another size");
        assert!(frame_major(&[0xff, 0xff], 601).is_err(), "not a model");
    }
}
