//! File input and output: PNG for pictures, NPY for arrays that Python users load.

pub mod npy;
pub mod png;
