//! Decoding one tensor info (name, dims, type, offset) at the parser's cursor, with the
//! shape overflow and block-size checks.

use super::error::GgufError;
use super::reader::{TensorInfo, MAX_DIMS};
use super::reader_parser::Parser;
use super::types::GgmlType;

impl<'a> Parser<'a> {
    pub(super) fn tensor_info(&mut self, i: usize) -> Result<TensorInfo, GgufError> {
        let name = self.string(&|| format!("name of tensor info {i}"))?;
        let n_dims = self.u32(&|| format!("dimension count of tensor `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::InvalidDims {
                file: self.file.to_path_buf(),
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(&|| format!("dimensions of tensor `{name}`"))?);
        }
        let type_id = self.u32(&|| format!("type of tensor `{name}`"))?;
        let offset = self.u64(&|| format!("data offset of tensor `{name}`"))?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(GgufError::UnknownTensorType {
                file: self.file.to_path_buf(),
                tensor: name,
                type_id,
            });
        };

        // Like ggml: sizes stay below 2^63. The product of the non-zero dims must not
        // overflow even when a zero dim makes the tensor empty.
        let overflow = || GgufError::ShapeOverflow {
            file: self.file.to_path_buf(),
            tensor: name.clone(),
            dims: dims.clone(),
        };
        let nonzero_product = dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&p| p <= i64::MAX as u64)
            .ok_or_else(overflow)?;
        let n_elements = if dims.contains(&0) {
            0
        } else {
            nonzero_product
        };
        let block = ggml_type.block_elements();
        if !dims[0].is_multiple_of(block) {
            return Err(GgufError::BlockMismatch {
                file: self.file.to_path_buf(),
                tensor: name,
                ggml_type,
                row: dims[0],
                block,
            });
        }
        let n_bytes = (n_elements / block)
            .checked_mul(ggml_type.block_bytes())
            .filter(|&b| b <= i64::MAX as u64)
            .ok_or_else(overflow)?;
        if usize::try_from(n_elements).is_err() {
            return Err(overflow());
        }
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        })
    }
}
