//! Memory planning: every input and intermediate gets a byte range in one arena, reusing
//! ranges whose values are dead (first fit over live intervals). Reshapes alias their
//! operand. An op's output never overlaps an operand it reads: operands are live at the node
//! that reads them, and only values dead *before* a node are reused by it.

use crate::graph::builder::{Graph, ValueId, ValueSource};
use crate::graph::op::Op;

/// Arena ranges start on this boundary, so every kernel sees cache-line-aligned data.
pub const ARENA_ALIGN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// `bytes` at `offset` in the arena.
    Arena { offset: usize, bytes: usize },
    /// A weight, bound to the backend once.
    Weight,
    /// A named backend state buffer.
    State,
    /// Same bytes as another value (a reshape).
    Alias(ValueId),
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub placements: Vec<Placement>,
    pub arena_bytes: usize,
    /// Sum of all arena values' sizes: what no reuse would have needed.
    pub unshared_bytes: usize,
}

impl Plan {
    /// The value whose storage `id` shares (itself unless it is an alias).
    pub fn root(&self, mut id: ValueId) -> ValueId {
        while let Placement::Alias(target) = self.placements[id.0] {
            id = target;
        }
        id
    }
}

fn align(bytes: usize) -> usize {
    bytes.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

/// Plans `graph`. Values in `keep` (outputs, named values to dump) live to the end.
pub fn plan(graph: &Graph, keep: &[ValueId]) -> Plan {
    let n_values = graph.values.len();
    let end_of_graph = graph.nodes.len();
    let mut placements: Vec<Option<Placement>> = vec![None; n_values];
    for (i, value) in graph.values.iter().enumerate() {
        placements[i] = match value.source {
            ValueSource::Weight(_) => Some(Placement::Weight),
            ValueSource::State => Some(Placement::State),
            ValueSource::Input | ValueSource::Node(_) => None,
        };
    }
    for node in &graph.nodes {
        if matches!(node.op, Op::Reshape { .. }) {
            placements[node.output.0] = Some(Placement::Alias(node.inputs[0]));
        }
    }
    let root = |mut id: ValueId| {
        while let Some(Placement::Alias(target)) = placements[id.0] {
            id = target;
        }
        id
    };

    // Live interval [first, last] in node indices for every root that needs arena space.
    let mut first = vec![usize::MAX; n_values];
    let mut last = vec![0usize; n_values];
    for (i, value) in graph.values.iter().enumerate() {
        match value.source {
            ValueSource::Input => first[i] = 0,
            ValueSource::Node(n) => first[i] = n,
            _ => {}
        }
    }
    for (n, node) in graph.nodes.iter().enumerate() {
        for &input in &node.inputs {
            let r = root(input);
            last[r.0] = last[r.0].max(n);
        }
        let r = root(node.output);
        last[r.0] = last[r.0].max(n);
    }
    for &id in keep.iter().chain(graph.outputs.iter().map(|(_, id)| id)) {
        let r = root(id);
        last[r.0] = end_of_graph;
    }
    // Inputs are written before the first node: they must not share with anything.
    for (id, _) in graph.inputs() {
        last[id.0] = end_of_graph;
    }

    let mut order: Vec<usize> = (0..n_values).filter(|&i| placements[i].is_none()).collect();
    order.sort_by_key(|&i| (first[i], i));

    let mut live: Vec<(usize, usize, usize)> = Vec::new(); // (offset, bytes, last use)
    let mut arena_bytes = 0;
    let mut unshared_bytes = 0;
    for i in order {
        let value = &graph.values[i];
        let bytes = align(value.shape.numel() * value.dtype.size_in_bytes());
        unshared_bytes += bytes;
        let start = first[i];
        live.retain(|&(_, _, end)| end >= start);
        live.sort_unstable();
        let mut offset = 0;
        for &(o, b, _) in &live {
            if o >= offset + bytes {
                break;
            }
            offset = offset.max(o + b);
        }
        live.push((offset, bytes, last[i]));
        arena_bytes = arena_bytes.max(offset + bytes);
        placements[i] = Some(Placement::Arena { offset, bytes });
    }

    Plan {
        placements: placements
            .into_iter()
            .map(|p| p.expect("every value placed"))
            .collect(),
        arena_bytes,
        unshared_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::graph::GraphBuilder;

    fn ranges_overlap(a: Placement, b: Placement) -> bool {
        match (a, b) {
            (
                Placement::Arena {
                    offset: o1,
                    bytes: b1,
                },
                Placement::Arena {
                    offset: o2,
                    bytes: b2,
                },
            ) => b1 > 0 && b2 > 0 && o1 < o2 + b2 && o2 < o1 + b1,
            _ => false,
        }
    }

    #[test]
    fn chain_reuses_dead_buffers_and_never_overlaps_operands() {
        let mut g = GraphBuilder::new();
        let x = g.input("x", DType::F32, [7, 33]).unwrap();
        let mut h = x;
        for _ in 0..10 {
            h = g.silu(h).unwrap();
        }
        g.output("y", h).unwrap();
        let graph = g.build();
        let plan = plan(&graph, &[]);
        assert!(plan.arena_bytes < plan.unshared_bytes / 3, "{plan:?}");
        for node in &graph.nodes {
            for &input in &node.inputs {
                let (a, b) = (
                    plan.placements[plan.root(input).0],
                    plan.placements[node.output.0],
                );
                assert!(!ranges_overlap(a, b), "node {node:?} output overlaps input");
            }
        }
        // The input is never reused by later values.
        let input = plan.placements[x.0];
        for (i, p) in plan.placements.iter().enumerate() {
            if i != x.0 {
                assert!(!ranges_overlap(input, *p));
            }
        }
    }

    #[test]
    fn reshape_aliases_and_extends_lifetime() {
        let mut g = GraphBuilder::new();
        let x = g.input("x", DType::F32, [4, 6]).unwrap();
        let a = g.silu(x).unwrap();
        let r = g.reshape(a, [24]).unwrap();
        let b = g.silu(x).unwrap();
        let c = g.silu(b).unwrap();
        let d = g.reshape(c, [24]).unwrap();
        let sum = g.add(r, d).unwrap();
        g.output("y", sum).unwrap();
        let graph = g.build();
        let plan = plan(&graph, &[]);
        assert_eq!(plan.placements[r.0], Placement::Alias(a));
        // `a` is read (through r) at the last node, so b and c must not take its place.
        for other in [b, c] {
            assert!(!ranges_overlap(
                plan.placements[a.0],
                plan.placements[other.0]
            ));
        }
    }
}
