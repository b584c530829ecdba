//! The k-d tree of the above mixture: its kernels in leaves, split along their continuous
//! means, with per-node bounds (the box of the means, the smallest scale and the largest shape
//! beneath) that let the log-density skip whole subtrees. Kernels are inserted and removed in
//! place: a full leaf splits in two, and only the bounds of the leaves touched and of their
//! ancestors are recomputed.

use std::f64::consts::FRAC_1_SQRT_2;

use super::{max, min};
use crate::dims::NumDim;
use crate::parzen::Table;

/// Kernels per leaf at most; a full leaf splits in two.
pub(super) const LEAF: usize = 32;
/// Kernels per leaf when the tree is built in one go.
const LEAF_BUILD: usize = 16;
/// No row / no leaf.
const NONE: u32 = u32::MAX;

/// A node of the k-d tree.
#[derive(Clone, Copy, Debug)]
pub(super) enum Node {
    /// Rows ordered before `(value in cont dim, row)` go left.
    Inner {
        dim: u32,
        value: f64,
        row: u32,
        left: u32,
        right: u32,
    },
    Leaf(u32),
}

/// The kernels of one leaf: continuous means and scales `[j * LEAF + i]`, shapes (see
/// `AboveMixture::shape`; `−∞` in free slots).
#[derive(Clone, Debug)]
pub(super) struct Leaf {
    pub(super) rows: Vec<u32>,
    pub(super) mu: Vec<f64>,
    pub(super) scale: Vec<f64>,
    pub(super) shape: Vec<f64>,
    /// Whether the bounds need recomputing (the leaf is then listed in
    /// `KdTree::stale`).
    dirty: bool,
    /// Its node.
    node: u32,
}

impl Leaf {
    fn new(nc: usize, node: u32) -> Self {
        Leaf {
            rows: Vec::with_capacity(LEAF),
            mu: vec![0.0; nc * LEAF],
            scale: vec![0.0; nc * LEAF],
            shape: vec![f64::NEG_INFINITY; LEAF],
            dirty: false,
            node,
        }
    }
}

/// What the tree reads of the mixture's kernels.
pub(super) struct Kernels<'a> {
    /// The observations: the kernels' means.
    pub(super) table: &'a Table,
    /// The continuous dimensions: table column and domain.
    pub(super) cont: &'a [(usize, NumDim)],
    /// Per numeric dimension (continuous first) and row: the bandwidth.
    pub(super) sigma: &'a [Vec<f64>],
    /// Per row: the shape (see `AboveMixture::shape`).
    pub(super) shape: &'a [f64],
}

/// The k-d tree over the member kernels of an above mixture (see the module documentation).
#[derive(Debug, Default)]
pub(super) struct KdTree {
    /// Per continuous dimension and row: the value (split key of the tree).
    vals: Vec<Vec<f64>>,
    /// Per row: its leaf and slot.
    leaf_of: Vec<u32>,
    nodes: Vec<Node>,
    /// Per node: its parent (`NONE` for the root).
    parent: Vec<u32>,
    /// Leaves whose bounds need recomputing, and per node a scratch mark.
    stale: Vec<u32>,
    marked: Vec<bool>,
    /// Per node, `3 · n_cont` values: the box of the continuous means (lowest, then
    /// highest) and the smallest scale per continuous dimension; per node the largest shape.
    bounds: Vec<f64>,
    bmax: Vec<f64>,
    leaves: Vec<Leaf>,
}

impl KdTree {
    /// The number of continuous dimensions (one array of split keys each).
    fn nc(&self) -> usize {
        self.vals.len()
    }

    /// Rebuilds the tree over the member rows `members` of the first `rows` table rows.
    pub(super) fn build(&mut self, k: &Kernels<'_>, rows: usize, members: Vec<u32>) {
        self.leaf_of.clear();
        self.leaf_of.resize(rows, NONE);
        self.vals.resize(k.cont.len(), Vec::new());
        for (j, v) in self.vals.iter_mut().enumerate() {
            let col = k.cont[j].0;
            v.clear();
            v.extend((0..rows).map(|r| k.table.get(r, col)));
        }
        self.build_tree(k, members);
    }

    /// Room for `rows` table rows in the per-row arrays.
    pub(super) fn grow(&mut self, rows: usize) {
        self.leaf_of.resize(rows, NONE);
        for v in &mut self.vals {
            v.resize(rows, 0.0);
        }
    }

    /// Adds member row `r` (its bandwidths and shape as they are in `k`).
    pub(super) fn insert(&mut self, k: &Kernels<'_>, r: u32) {
        let ri = r as usize;
        for (v, &(col, _)) in self.vals.iter_mut().zip(k.cont) {
            v[ri] = k.table.get(ri, col);
        }
        self.tree_insert(k, r);
    }

    /// Takes the new bandwidths (`sigma[j][r]`) and `shape` of member row `r` into its leaf.
    pub(super) fn update(&mut self, r: usize, sigma: &[Vec<f64>], shape: f64) {
        let nc = self.nc();
        let at = self.leaf_of[r];
        if at == NONE {
            return;
        }
        let (leaf, slot) = ((at >> 8) as usize, (at & 0xff) as usize);
        let l = &mut self.leaves[leaf];
        for (j, sigma) in sigma[..nc].iter().enumerate() {
            l.scale[j * LEAF + slot] = FRAC_1_SQRT_2 * (1.0 / sigma[r]);
        }
        l.shape[slot] = shape;
        self.touch(leaf);
    }

    /// Recomputes the bounds of the leaves changed since the last refresh and of their
    /// ancestors.
    pub(super) fn refresh(&mut self) {
        // Bounds of the changed leaves, then of their ancestors bottom-up (a child's index is
        // larger than its parent's).
        let nc = self.nc();
        let nn = self.nodes.len();
        let w = 3 * nc;
        self.bounds.resize(nn * w, 0.0);
        self.bmax.resize(nn, f64::NEG_INFINITY);
        self.marked.resize(nn, false);
        let stale = std::mem::take(&mut self.stale);
        let mut inner = Vec::new();
        for &leaf in &stale {
            let l = &mut self.leaves[leaf as usize];
            l.dirty = false;
            let node = l.node as usize;
            let len = l.rows.len();
            self.bmax[node] = l.shape[..len]
                .iter()
                .fold(f64::NEG_INFINITY, |a, &x| max(a, x));
            let bounds = &mut self.bounds[node * w..(node + 1) * w];
            for j in 0..nc {
                let mu = &l.mu[j * LEAF..j * LEAF + len];
                let sc = &l.scale[j * LEAF..j * LEAF + len];
                let (mut lo, mut hi, mut smin) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY);
                for (&x, &s) in mu.iter().zip(sc) {
                    lo = min(lo, x);
                    hi = max(hi, x);
                    smin = min(smin, s);
                }
                bounds[j] = lo;
                bounds[nc + j] = hi;
                bounds[2 * nc + j] = smin;
            }
            let mut up = self.parent[node];
            while up != NONE && !self.marked[up as usize] {
                self.marked[up as usize] = true;
                inner.push(up);
                up = self.parent[up as usize];
            }
        }
        self.stale = stale;
        self.stale.clear();
        inner.sort_unstable_by(|a, b| b.cmp(a));
        for node in inner {
            let node = node as usize;
            self.marked[node] = false;
            if let Node::Inner { left, right, .. } = self.nodes[node] {
                let (a, b) = (left as usize, right as usize);
                self.bmax[node] = max(self.bmax[a], self.bmax[b]);
                let (ba, bb) = (a * w, b * w);
                for j in 0..nc {
                    self.bounds[node * w + j] = min(self.bounds[ba + j], self.bounds[bb + j]);
                    self.bounds[node * w + nc + j] =
                        max(self.bounds[ba + nc + j], self.bounds[bb + nc + j]);
                    self.bounds[node * w + 2 * nc + j] =
                        min(self.bounds[ba + 2 * nc + j], self.bounds[bb + 2 * nc + j]);
                }
            }
        }
    }

    /// Whether the tree has no node (it was never built).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `node` (the root is 0).
    #[inline]
    pub(super) fn node(&self, node: usize) -> Node {
        self.nodes[node]
    }

    /// Leaf `leaf` (see [`Node::Leaf`]).
    #[inline]
    pub(super) fn leaf(&self, leaf: u32) -> &Leaf {
        &self.leaves[leaf as usize]
    }

    /// The largest shape of the kernels under node `node`.
    #[inline]
    pub(super) fn max_shape(&self, node: usize) -> f64 {
        self.bmax[node]
    }

    /// How far below [`KdTree::max_shape`] every term under node `node` lies at least at the
    /// point `z` (one value per continuous dimension): see [`box_distance`].
    #[inline]
    pub(super) fn distance(&self, node: usize, z: &[f64]) -> f64 {
        let nc = z.len();
        box_distance(z, &self.bounds[node * 3 * nc..(node + 1) * 3 * nc])
    }

    /// The split key of row `r` along continuous dimension `j` (0 when there is none).
    fn key(&self, j: usize, r: u32) -> f64 {
        self.vals.get(j).map_or(0.0, |v| v[r as usize])
    }

    fn build_tree(&mut self, k: &Kernels<'_>, mut rows: Vec<u32>) {
        self.nodes.clear();
        self.leaves.clear();
        self.parent.clear();
        self.stale.clear();
        self.bounds.clear();
        self.bmax.clear();
        self.build_node(k, &mut rows, NONE);
    }

    /// Appends the subtree over `rows`; returns its node index.
    fn build_node(&mut self, k: &Kernels<'_>, rows: &mut [u32], parent: u32) -> u32 {
        let at = self.nodes.len() as u32;
        self.parent.push(parent);
        if rows.len() <= LEAF_BUILD {
            let leaf = self.leaves.len() as u32;
            self.nodes.push(Node::Leaf(leaf));
            self.leaves.push(Leaf::new(k.cont.len(), at));
            for &r in rows.iter() {
                self.leaf_push(k, leaf as usize, r);
            }
            return at;
        }
        let j = self.widest(k.cont, rows);
        let mid = rows.len() / 2;
        rows.select_nth_unstable_by(mid, |&a, &b| {
            let (ka, kb) = (self.key(j, a), self.key(j, b));
            ka.total_cmp(&kb).then(a.cmp(&b))
        });
        let (value, row) = (self.key(j, rows[mid]), rows[mid]);
        self.nodes.push(Node::Leaf(NONE));
        let (l, r) = rows.split_at_mut(mid);
        let left = self.build_node(k, l, at);
        let right = self.build_node(k, r, at);
        self.nodes[at as usize] = Node::Inner {
            dim: j as u32,
            value,
            row,
            left,
            right,
        };
        at
    }

    /// The continuous dimension along which `rows` spread most (relative to its range).
    fn widest(&self, cont: &[(usize, NumDim)], rows: &[u32]) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for (j, ((_, d), v)) in cont.iter().zip(&self.vals).enumerate() {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &r in rows {
                let x = v[r as usize];
                lo = min(lo, x);
                hi = max(hi, x);
            }
            let spread = (hi - lo) / (d.hi - d.lo);
            if spread > best.1 {
                best = (j, spread);
            }
        }
        best.0
    }

    fn leaf_push(&mut self, k: &Kernels<'_>, leaf: usize, r: u32) {
        let slot = self.leaves[leaf].rows.len();
        for j in 0..k.cont.len() {
            let col = k.cont[j].0;
            let l = &mut self.leaves[leaf];
            l.mu[j * LEAF + slot] = k.table.get(r as usize, col);
            l.scale[j * LEAF + slot] = FRAC_1_SQRT_2 * (1.0 / k.sigma[j][r as usize]);
        }
        let l = &mut self.leaves[leaf];
        l.rows.push(r);
        l.shape[slot] = k.shape[r as usize];
        self.touch(leaf);
        self.leaf_of[r as usize] = ((leaf as u32) << 8) | slot as u32;
    }

    fn tree_insert(&mut self, k: &Kernels<'_>, r: u32) {
        if self.nodes.is_empty() {
            self.build_tree(k, vec![r]);
            return;
        }
        let mut at = 0usize;
        loop {
            match self.nodes[at] {
                Node::Inner {
                    dim,
                    value,
                    row,
                    left,
                    right,
                } => {
                    let key = self.key(dim as usize, r);
                    at = if key.total_cmp(&value).then(r.cmp(&row)).is_lt() {
                        left as usize
                    } else {
                        right as usize
                    };
                }
                Node::Leaf(leaf) => {
                    let leaf = leaf as usize;
                    if self.leaves[leaf].rows.len() < LEAF {
                        self.leaf_push(k, leaf, r);
                        return;
                    }
                    // Split the full leaf: this node becomes the root of a new subtree.
                    let mut rows = std::mem::take(&mut self.leaves[leaf].rows);
                    self.leaves[leaf].shape.fill(f64::NEG_INFINITY);
                    rows.push(r);
                    let j = self.widest(k.cont, &rows);
                    let mid = rows.len() / 2;
                    rows.select_nth_unstable_by(mid, |&a, &b| {
                        let (ka, kb) = (self.key(j, a), self.key(j, b));
                        ka.total_cmp(&kb).then(a.cmp(&b))
                    });
                    let (value, row) = (self.key(j, rows[mid]), rows[mid]);
                    let new_leaf = self.leaves.len();
                    let (left, right) = (self.nodes.len() as u32, self.nodes.len() as u32 + 1);
                    self.leaves.push(Leaf::new(k.cont.len(), right));
                    self.leaves[leaf].node = left;
                    for &x in &rows[..mid] {
                        self.leaf_push(k, leaf, x);
                    }
                    for &x in &rows[mid..] {
                        self.leaf_push(k, new_leaf, x);
                    }
                    self.nodes.push(Node::Leaf(leaf as u32));
                    self.nodes.push(Node::Leaf(new_leaf as u32));
                    self.parent.push(at as u32);
                    self.parent.push(at as u32);
                    self.nodes[at] = Node::Inner {
                        dim: j as u32,
                        value,
                        row,
                        left,
                        right,
                    };
                    return;
                }
            }
        }
    }

    /// Marks a leaf's bounds for recomputing.
    fn touch(&mut self, leaf: usize) {
        let l = &mut self.leaves[leaf];
        if !l.dirty {
            l.dirty = true;
            self.stale.push(leaf as u32);
        }
    }

    /// Removes member row `r`.
    pub(super) fn remove(&mut self, r: u32) {
        let nc = self.nc();
        let at = self.leaf_of[r as usize];
        if at == NONE {
            return;
        }
        self.leaf_of[r as usize] = NONE;
        let (leaf, slot) = ((at >> 8) as usize, (at & 0xff) as usize);
        let l = &mut self.leaves[leaf];
        let last = l.rows.len() - 1;
        l.rows.swap_remove(slot);
        if slot != last {
            for j in 0..nc {
                l.mu[j * LEAF + slot] = l.mu[j * LEAF + last];
                l.scale[j * LEAF + slot] = l.scale[j * LEAF + last];
            }
            l.shape[slot] = l.shape[last];
            let moved = l.rows[slot] as usize;
            self.leaf_of[moved] = ((leaf as u32) << 8) | slot as u32;
        }
        l.shape[last] = f64::NEG_INFINITY;
        self.touch(leaf);
    }
}

/// `Σ_j (gap_j · smin_j)²` for the point `z` and a node's `bounds` (`lo`, `hi`, `smin` per
/// dimension, see `KdTree::bounds`), where `gap_j` is the distance from `z_j` to
/// `[lo_j, hi_j]`: how far below its largest shape every term under the node lies at least.
#[inline]
fn box_distance(z: &[f64], bounds: &[f64]) -> f64 {
    let nc = z.len();
    let (lo, rest) = bounds.split_at(nc);
    let (hi, smin) = rest.split_at(nc.min(rest.len()));
    let mut acc = 0.0;
    for (((&zj, &lo), &hi), &sm) in z.iter().zip(lo).zip(hi).zip(smin) {
        let gap = max(max(lo - zj, zj - hi), 0.0) * sm;
        acc += gap * gap;
    }
    acc
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn dim(lo: f64, hi: f64) -> NumDim {
        NumDim {
            low: lo,
            high: hi,
            step: None,
            log: false,
            int: false,
            lo,
            hi,
        }
    }

    /// Every member in exactly one leaf slot with its mean, scale and shape, free slots at
    /// `−∞`, and every node's bounds covering the kernels beneath it.
    fn check(t: &KdTree, k: &Kernels<'_>, members: &[u32]) {
        let nc = k.cont.len();
        let mut seen = vec![false; t.leaf_of.len()];
        for (li, l) in t.leaves.iter().enumerate() {
            assert!(l.rows.len() <= LEAF);
            assert!(matches!(t.nodes[l.node as usize], Node::Leaf(x) if x as usize == li));
            for (slot, &r) in l.rows.iter().enumerate() {
                assert_eq!(t.leaf_of[r as usize], ((li as u32) << 8) | slot as u32);
                assert!(!seen[r as usize], "row {r} twice");
                seen[r as usize] = true;
                assert_eq!(l.shape[slot], k.shape[r as usize]);
                for j in 0..nc {
                    let x = l.mu[j * LEAF + slot];
                    assert_eq!(x, k.table.get(r as usize, k.cont[j].0));
                    let s = l.scale[j * LEAF + slot];
                    assert_eq!(s, FRAC_1_SQRT_2 * (1.0 / k.sigma[j][r as usize]));
                    // The leaf's node and all its ancestors bound the kernel.
                    let mut node = l.node;
                    while node != NONE {
                        let b = &t.bounds[node as usize * 3 * nc..(node as usize + 1) * 3 * nc];
                        assert!(b[j] <= x && x <= b[nc + j], "row {r}: mean outside");
                        assert!(b[2 * nc + j] <= s, "row {r}: scale below the bound");
                        assert!(t.bmax[node as usize] >= l.shape[slot]);
                        node = t.parent[node as usize];
                    }
                }
            }
            assert!(l.shape[l.rows.len()..]
                .iter()
                .all(|&x| x == f64::NEG_INFINITY));
        }
        let mut want = vec![false; t.leaf_of.len()];
        for &r in members {
            want[r as usize] = true;
        }
        assert_eq!(seen, want);
    }

    #[test]
    fn inserts_and_removes_keep_every_kernel_in_its_leaf_and_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let rows = 600;
        let cont = vec![
            (0, dim(-1.0, 1.0)),
            (2, dim(0.0, 10.0)),
            (3, dim(-5.0, 0.0)),
        ];
        let width = 4;
        let mut table = Table {
            width,
            data: Vec::new(),
        };
        for r in 0..rows {
            for col in 0..width {
                // Some repeated values: ties along every split dimension.
                let x = if r % 7 == 3 && r > 7 {
                    table.get(r - 7, col)
                } else {
                    rng.gen::<f64>()
                };
                table.data.push(x);
            }
        }
        let sigma: Vec<Vec<f64>> = (0..cont.len())
            .map(|_| (0..rows).map(|_| rng.gen_range(0.01..1.0)).collect())
            .collect();
        let shape: Vec<f64> = (0..rows).map(|_| rng.gen_range(-5.0..5.0)).collect();
        let k = Kernels {
            table: &table,
            cont: &cont,
            sigma: &sigma,
            shape: &shape,
        };
        let mut members: Vec<u32> = (0..100).filter(|r| r % 3 != 0).collect();
        let mut t = KdTree::default();
        assert!(t.is_empty());
        t.build(&k, 100, members.clone());
        t.refresh();
        check(&t, &k, &members);
        let mut n = 100;
        for round in 0..40 {
            // Grow by a few rows, drop a few members, take some back.
            t.grow(n + 12);
            for r in n..n + 12 {
                t.insert(&k, r as u32);
                members.push(r as u32);
            }
            n += 12;
            for _ in 0..5 {
                let i = rng.gen_range(0..members.len());
                t.remove(members.swap_remove(i));
            }
            if round % 4 == 0 {
                for r in (0..n as u32).filter(|r| r % 3 == 0).take(3) {
                    if !members.contains(&r) {
                        t.insert(&k, r);
                        members.push(r);
                    }
                }
            }
            t.refresh();
            check(&t, &k, &members);
        }
        assert!(t.leaves.len() > 8, "the tree split its leaves");
    }
}
