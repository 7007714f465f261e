//! Elements the particles are made of: symbol, atomic number and the FCC lattice
//! constant of the element's reference state (ASE's `reference_states`, Å).

use crate::{Error, Result};

/// A chemical element with an FCC reference state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Element {
    /// Chemical symbol (`"Au"`).
    pub symbol: &'static str,
    /// Atomic number.
    pub z: u8,
    /// Lattice constant of the FCC reference state, Å.
    pub fcc_a: f64,
}

/// The FCC metals with presets (lattice constants as in ASE 3.29's reference states).
pub const FCC_METALS: [Element; 10] = [
    Element { symbol: "Au", z: 79, fcc_a: 4.08 },
    Element { symbol: "Ag", z: 47, fcc_a: 4.09 },
    Element { symbol: "Pt", z: 78, fcc_a: 3.92 },
    Element { symbol: "Pd", z: 46, fcc_a: 3.89 },
    Element { symbol: "Cu", z: 29, fcc_a: 3.61 },
    Element { symbol: "Al", z: 13, fcc_a: 4.05 },
    Element { symbol: "Ni", z: 28, fcc_a: 3.52 },
    Element { symbol: "Ir", z: 77, fcc_a: 3.84 },
    Element { symbol: "Rh", z: 45, fcc_a: 3.80 },
    Element { symbol: "Pb", z: 82, fcc_a: 4.95 },
];

impl Element {
    /// Gold, the default of the column-height method (a = 4.08 Å).
    pub const AU: Element = FCC_METALS[0];

    /// The preset for a chemical symbol (case-sensitive, `"Au"`).
    ///
    /// # Errors
    /// An unknown symbol, with the list of presets.
    pub fn from_symbol(symbol: &str) -> Result<Element> {
        FCC_METALS.iter().copied().find(|e| e.symbol == symbol).ok_or_else(|| {
            let known: Vec<&str> = FCC_METALS.iter().map(|e| e.symbol).collect();
            Error::invalid("element", symbol, format!("one of the FCC presets {known:?}"))
        })
    }
}
