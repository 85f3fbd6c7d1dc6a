//! Cuts an ONNX model in two at one tensor: a *head* that computes the tensor from the model's
//! inputs, and a *tail* that computes the model's outputs from the tensor alone.
//!
//! Piper uses it to run VITS as text → latent and latent → audio: the decoder (the bulk of a
//! sentence's time) then runs on slices of the latent, so the first sentence of a stream can be
//! decoded in parallel pieces on idle workers (see `tts::piper`). Running the two halves in a row
//! is the same computation as the whole model (same nodes, same order, the tensor handed over as
//! it was), so nothing changes for ordinary requests.
//!
//! A cut is only made where it is clean: every node that reads the tensor, directly or through
//! other such nodes, needs nothing else from the head or from the model's inputs (initializers
//! are fine), and those nodes produce all of the model's outputs. Models with control-flow
//! subgraphs are left whole (their bodies may read outer values by name). Edited at the protobuf
//! wire level like [`super::conv2d`]: every field not touched is copied byte for byte.

use std::collections::HashSet;

use super::proto::*;

/// The two models [`split_at`] makes.
pub struct Split {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

struct Node<'a> {
    inputs: Vec<String>,
    outputs: Vec<String>,
    raw: &'a [u8],
    has_subgraph: bool,
}

fn read_nodes<'a>(graph: &[Field<'a>]) -> Result<Vec<Node<'a>>, String> {
    let mut nodes = Vec::new();
    for f in graph.iter().filter(|f| f.num == GRAPH_NODE && f.wire == LEN) {
        let fs = fields(f.bytes)?;
        let mut has_subgraph = false;
        for a in fs.iter().filter(|a| a.num == NODE_ATTRIBUTE && a.wire == LEN) {
            has_subgraph |= fields(a.bytes)?.iter().any(|x| x.num == ATTR_GRAPH || x.num == ATTR_GRAPHS);
        }
        nodes.push(Node {
            inputs: strings(&fs, NODE_INPUT)?,
            outputs: strings(&fs, NODE_OUTPUT)?,
            raw: f.raw,
            has_subgraph,
        });
    }
    Ok(nodes)
}

/// The model cut at float tensor `tensor` (see the module docs), or `None` when the cut is not
/// clean there. The head keeps the model's inputs and outputs `tensor`; the tail takes `tensor`
/// and gives the model's outputs. Each keeps only the initializers its nodes read.
pub fn split_at(model: &[u8], tensor: &str) -> Result<Option<Split>, String> {
    let top = fields(model)?;
    let graph = top.iter().find(|f| f.num == MODEL_GRAPH && f.wire == LEN).ok_or("the model has no graph")?;
    let graph_fields = fields(graph.bytes)?;
    let nodes = read_nodes(&graph_fields)?;
    if nodes.iter().any(|n| n.has_subgraph) || !nodes.iter().any(|n| n.outputs.iter().any(|o| o == tensor)) {
        return Ok(None);
    }
    let mut initializers = HashSet::new();
    for f in graph_fields.iter().filter(|f| f.num == GRAPH_INITIALIZER && f.wire == LEN) {
        initializers.insert(string(&fields(f.bytes)?, TENSOR_NAME)?);
    }

    // Nodes are stored in topological order (an ONNX rule), so one pass finds everything
    // downstream of the tensor.
    let mut downstream: HashSet<&str> = HashSet::from([tensor]);
    let mut in_tail = vec![false; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        if n.inputs.iter().any(|x| downstream.contains(x.as_str())) {
            in_tail[i] = true;
            downstream.extend(n.outputs.iter().map(String::as_str));
        }
    }
    // The names one side's nodes read (`inputs`) or produce.
    let names = |tail: bool, inputs: bool| -> HashSet<&str> {
        nodes
            .iter()
            .zip(&in_tail)
            .filter(|(_, t)| **t == tail)
            .flat_map(|(n, _)| if inputs { &n.inputs } else { &n.outputs }.iter().map(String::as_str))
            .collect()
    };
    let tail_reads_only_its_own =
        names(true, true).iter().all(|x| x.is_empty() || downstream.contains(x) || initializers.contains(*x));
    let mut outputs = Vec::new();
    for f in graph_fields.iter().filter(|f| f.num == GRAPH_OUTPUT && f.wire == LEN) {
        outputs.push(string(&fields(f.bytes)?, VALUE_INFO_NAME)?);
    }
    let tail_gives_every_output = outputs.iter().all(|o| o != tensor && downstream.contains(o.as_str()));
    if !tail_reads_only_its_own || !tail_gives_every_output || !in_tail.contains(&true) {
        return Ok(None);
    }

    let mut halves = Vec::new();
    for tail in [false, true] {
        let (reads, produced) = (names(tail, true), names(tail, false));
        let mut g = Vec::with_capacity(graph.bytes.len() / 2);
        let mut node_index = 0;
        for f in &graph_fields {
            match f.num {
                GRAPH_NODE if f.wire == LEN => {
                    if in_tail[node_index] == tail {
                        g.extend_from_slice(nodes[node_index].raw);
                    }
                    node_index += 1;
                }
                GRAPH_INITIALIZER if f.wire == LEN => {
                    if reads.contains(string(&fields(f.bytes)?, TENSOR_NAME)?.as_str()) {
                        g.extend_from_slice(f.raw);
                    }
                }
                // The head keeps the inputs; the tail's one input is the tensor (added below),
                // plus, for old IR versions that list initializers as inputs, the initializers
                // it keeps.
                GRAPH_INPUT if f.wire == LEN => {
                    let name = string(&fields(f.bytes)?, VALUE_INFO_NAME)?;
                    if !tail || (initializers.contains(&name) && reads.contains(name.as_str())) {
                        g.extend_from_slice(f.raw);
                    }
                }
                // The tail keeps the outputs; the head's one output is the tensor (added below).
                GRAPH_OUTPUT if f.wire == LEN => {
                    if tail {
                        g.extend_from_slice(f.raw);
                    }
                }
                GRAPH_VALUE_INFO if f.wire == LEN => {
                    let name = string(&fields(f.bytes)?, VALUE_INFO_NAME)?;
                    if produced.contains(name.as_str()) && name != tensor {
                        g.extend_from_slice(f.raw);
                    }
                }
                _ => g.extend_from_slice(f.raw),
            }
        }
        put_bytes(&mut g, if tail { GRAPH_INPUT } else { GRAPH_OUTPUT }, &float_value_info(tensor, None));
        halves.push(with_graph(&top, &g));
    }
    let tail = halves.pop().ok_or("no tail")?;
    let head = halves.pop().ok_or("no head")?;
    Ok(Some(Split { head, tail }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn initializer(name: &str) -> Vec<u8> {
        raw_tensor(name, &[1], ELEM_FLOAT, &1.0f32.to_le_bytes())
    }

    /// `x·a → h; h + b → y; y·x → out` when `tail_reads_input`, else `y·c → out`.
    fn model(tail_reads_input: bool) -> Vec<u8> {
        let mut g = Vec::new();
        put_bytes(&mut g, GRAPH_NODE, &node("Mul", "m", &["x", "a"], &["h"], &[]));
        put_bytes(&mut g, GRAPH_NODE, &node("Add", "p", &["h", "b"], &["y"], &[]));
        let last = if tail_reads_input { "x" } else { "c" };
        put_bytes(&mut g, GRAPH_NODE, &node("Mul", "q", &["y", last], &["out"], &[]));
        for i in ["a", "b", "c"] {
            put_bytes(&mut g, GRAPH_INITIALIZER, &initializer(i));
        }
        put_bytes(&mut g, GRAPH_INPUT, &float_value_info("x", None));
        put_bytes(&mut g, GRAPH_OUTPUT, &float_value_info("out", None));
        put_bytes(&mut g, GRAPH_VALUE_INFO, &float_value_info("y", None));
        let mut m = Vec::new();
        put_int(&mut m, 1, 8); // ir_version
        put_bytes(&mut m, MODEL_GRAPH, &g);
        m
    }

    struct Graph {
        nodes: Vec<String>,
        initializers: Vec<String>,
        inputs: Vec<String>,
        outputs: Vec<String>,
        value_info: Vec<String>,
    }

    fn read(model: &[u8]) -> Graph {
        let top = fields(model).unwrap();
        let g = fields(top.iter().find(|f| f.num == MODEL_GRAPH).unwrap().bytes).unwrap();
        let names = |num: u32, field: u32| -> Vec<String> {
            g.iter().filter(|f| f.num == num).map(|f| string(&fields(f.bytes).unwrap(), field).unwrap()).collect()
        };
        Graph {
            nodes: names(GRAPH_NODE, NODE_NAME),
            initializers: names(GRAPH_INITIALIZER, TENSOR_NAME),
            inputs: names(GRAPH_INPUT, VALUE_INFO_NAME),
            outputs: names(GRAPH_OUTPUT, VALUE_INFO_NAME),
            value_info: names(GRAPH_VALUE_INFO, VALUE_INFO_NAME),
        }
    }

    #[test]
    fn the_model_is_cut_at_the_tensor() {
        let s = split_at(&model(false), "h").unwrap().unwrap();
        let (head, tail) = (read(&s.head), read(&s.tail));
        assert_eq!(head.nodes, ["m"]);
        assert_eq!(head.initializers, ["a"], "only what the head reads");
        assert_eq!(head.inputs, ["x"]);
        assert_eq!(head.outputs, ["h"]);
        assert!(head.value_info.is_empty(), "`y` is not the head's");
        assert_eq!(tail.nodes, ["p", "q"]);
        assert_eq!(tail.initializers, ["b", "c"]);
        assert_eq!(tail.inputs, ["h"]);
        assert_eq!(tail.outputs, ["out"]);
        assert_eq!(tail.value_info, ["y"]);
        // Fields outside the graph are kept.
        assert_eq!(fields(&s.tail).unwrap()[0].raw, fields(&model(false)).unwrap()[0].raw);
    }

    #[test]
    fn unclean_cuts_are_refused() {
        assert!(split_at(&model(true), "h").unwrap().is_none(), "the tail also reads the model's input");
        assert!(split_at(&model(false), "out").unwrap().is_none(), "nothing after the tensor");
        assert!(split_at(&model(false), "nowhere").unwrap().is_none(), "no such tensor");
        assert!(split_at(&model(false), "x").unwrap().is_none(), "a model input is not produced by a node");
        assert!(split_at(&[0xff, 0xff], "h").is_err(), "not a model");
    }
}
