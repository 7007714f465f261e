//! Conversions between `ndarray` arrays and candle tensors (NCHW, f32).

use candle_core::{Device, Tensor};
use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView4};

use crate::{Error, Result};

/// A stack of equally sized grey images as an `[n, 1, h, w]` tensor.
pub fn images_to_tensor(images: &[ArrayView2<'_, f32>], device: &Device) -> Result<Tensor> {
    let Some(first) = images.first() else { return Err(Error::invalid("images", "[]", "at least one image")) };
    let (h, w) = first.dim();
    let mut data = Vec::with_capacity(images.len() * h * w);
    for (i, im) in images.iter().enumerate() {
        if im.dim() != (h, w) {
            return Err(Error::invalid(
                "images",
                format!("image {i} of {:?}", im.dim()),
                format!("{h}×{w}, as image 0"),
            ));
        }
        data.extend(im.iter().copied());
    }
    Ok(Tensor::from_vec(data, (images.len(), 1, h, w), device)?)
}

/// A stack of grey images `[n, h, w]` as an `[n, 1, h, w]` tensor, without a copy when
/// the array is in standard layout.
pub fn stack_to_tensor(images: Array3<f32>, device: &Device) -> Result<Tensor> {
    let (n, h, w) = images.dim();
    let data =
        if images.is_standard_layout() { images.into_raw_vec_and_offset().0 } else { images.iter().copied().collect() };
    Ok(Tensor::from_vec(data, (n, 1, h, w), device)?)
}

/// An NCHW array as a tensor.
pub fn array4_to_tensor(array: ArrayView4<'_, f32>, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = array.iter().copied().collect();
    Ok(Tensor::from_vec(data, array.dim(), device)?)
}

/// A 4-D tensor as an NCHW array (copied to the CPU).
pub fn tensor_to_array4(t: &Tensor) -> Result<Array4<f32>> {
    let dims = t.dims4()?;
    let data = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Array4::from_shape_vec(dims, data).map_err(|e| Error::invalid("tensor", e, "a contiguous 4-D tensor"))
}

/// A 2-D tensor (e.g. `[batch, classes]` probabilities) as an array (copied to the CPU).
pub fn tensor_to_array2(t: &Tensor) -> Result<Array2<f32>> {
    let dims = t.dims2()?;
    let data = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Array2::from_shape_vec(dims, data).map_err(|e| Error::invalid("tensor", e, "a contiguous 2-D tensor"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trips_keep_layout() {
        let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = array![[7.0f32, 8.0, 9.0], [10.0, 11.0, 12.0]];
        let t = images_to_tensor(&[a.view(), b.view()], &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 1, 2, 3]);
        let back = tensor_to_array4(&t).unwrap();
        assert_eq!(back[[1, 0, 0, 2]], 9.0);
        assert_eq!(back[[0, 0, 1, 0]], 4.0);
        let again = array4_to_tensor(back.view(), &Device::Cpu).unwrap();
        assert_eq!(tensor_to_array4(&again).unwrap(), back);
        let c = array![[1.0f32]];
        assert!(images_to_tensor(&[a.view(), c.view()], &Device::Cpu).is_err());
        assert!(images_to_tensor(&[], &Device::Cpu).is_err());
    }
}
