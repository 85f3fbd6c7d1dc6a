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

use super::proto::*;

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
        put_bytes(&mut graph_out, GRAPH_INITIALIZER, &raw_tensor(axes, &[1], TENSOR_INT64, &2i64.to_le_bytes()));
    }
    Ok(Rewritten { model: with_graph(&top, &graph_out), convolutions: converted })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
