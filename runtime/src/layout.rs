//! Shape, strides and offset: how a tensor's elements sit in its storage.

use std::fmt;

/// Dimensions of a tensor, outermost first.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major strides, in elements.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }
    /// Size of the last dimension (1 for a scalar).
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }
    /// Product of all dimensions but the last: the "rows" of a row-wise op.
    pub fn rows(&self) -> usize {
        self.numel() / self.last().max(1)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

/// Shape plus strides and a start offset (both in elements): a view into storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shape: Shape,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl Layout {
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }

    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&dim, &stride) in self.shape.0.iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected *= dim;
        }
        true
    }

    /// One past the largest element index this view touches (0 for an empty view).
    pub fn extent(&self) -> usize {
        if self.shape.numel() == 0 {
            return self.offset;
        }
        self.offset
            + self
                .shape
                .0
                .iter()
                .zip(&self.strides)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// Reorders dimensions: output dim `i` is input dim `perm[i]`. `None` if `perm` is not a
    /// permutation of `0..rank`.
    pub fn permute(&self, perm: &[usize]) -> Option<Layout> {
        let rank = self.shape.rank();
        if perm.len() != rank {
            return None;
        }
        let mut seen = vec![false; rank];
        for &p in perm {
            if p >= rank || seen[p] {
                return None;
            }
            seen[p] = true;
        }
        Some(Layout {
            shape: Shape(perm.iter().map(|&p| self.shape.0[p]).collect()),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// Restricts `axis` to `start..end`. `None` when out of range.
    pub fn narrow(&self, axis: usize, start: usize, end: usize) -> Option<Layout> {
        if axis >= self.shape.rank() || start > end || end > self.shape.0[axis] {
            return None;
        }
        let mut out = self.clone();
        out.shape.0[axis] = end - start;
        out.offset += start * self.strides[axis];
        Some(out)
    }

    /// Same elements, new shape; only for contiguous views (`None` otherwise or when the
    /// element counts differ).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Option<Layout> {
        let shape = shape.into();
        if shape.numel() != self.shape.numel() || !self.is_contiguous() {
            return None;
        }
        let mut out = Layout::contiguous(shape);
        out.offset = self.offset;
        Some(out)
    }

    /// Element indices into storage, in row-major order of this view.
    pub fn indices(&self) -> StridedIndices<'_> {
        StridedIndices {
            layout: self,
            counter: vec![0; self.shape.rank()],
            next: self.offset,
            remaining: self.shape.numel(),
        }
    }
}

/// Iterator over the storage indices of a [`Layout`], row-major.
pub struct StridedIndices<'a> {
    layout: &'a Layout,
    counter: Vec<usize>,
    next: usize,
    remaining: usize,
}

impl Iterator for StridedIndices<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.next;
        let dims = &self.layout.shape.0;
        let strides = &self.layout.strides;
        for axis in (0..dims.len()).rev() {
            self.counter[axis] += 1;
            self.next += strides[axis];
            if self.counter[axis] < dims[axis] {
                break;
            }
            self.next -= strides[axis] * dims[axis];
            self.counter[axis] = 0;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_then_indices_walks_transposed() {
        let l = Layout::contiguous([2, 3]);
        let t = l.permute(&[1, 0]).unwrap();
        assert_eq!(t.indices().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(!t.is_contiguous());
        assert_eq!(t.extent(), 6);
    }

    #[test]
    fn narrow_moves_offset() {
        let l = Layout::contiguous([4, 5]);
        let n = l.narrow(1, 2, 4).unwrap();
        assert_eq!(
            n.indices().collect::<Vec<_>>(),
            vec![2, 3, 7, 8, 12, 13, 17, 18]
        );
        assert!(l.narrow(1, 3, 6).is_none());
    }

    #[test]
    fn reshape_requires_contiguous_and_same_count() {
        let l = Layout::contiguous([2, 6]);
        assert_eq!(l.reshape([3, 4]).unwrap().shape.dims(), &[3, 4]);
        assert!(l.reshape([5]).is_none());
        assert!(l.permute(&[1, 0]).unwrap().reshape([12]).is_none());
    }
}
