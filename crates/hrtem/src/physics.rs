//! Electron-optical constants: relativistic wavelength and interaction constant, with
//! the CODATA 2014 values ASE (and so abTEM) uses.

use crate::{Error, Result};

/// Planck constant, J·s (CODATA 2014, as ASE).
pub const PLANCK: f64 = 6.626_070_04e-34;
/// Speed of light, m/s.
pub const SPEED_OF_LIGHT: f64 = 299_792_458.0;
/// Electron rest mass, kg (CODATA 2014).
pub const ELECTRON_MASS: f64 = 9.109_383_56e-31;
/// Elementary charge, C (CODATA 2014).
pub const ELEMENTARY_CHARGE: f64 = 1.602_176_620_8e-19;

fn check_energy(energy: f64) -> Result<()> {
    if !(energy.is_finite() && energy > 0.0) {
        return Err(Error::invalid("energy", energy, "a positive beam energy in eV"));
    }
    Ok(())
}

/// Relativistic electron wavelength for a beam energy in eV, in Å:
/// `λ = h c / √(E (2 m c² + E))` (0.019687 Å at 300 keV).
///
/// # Errors
/// A non-positive or non-finite energy.
pub fn wavelength(energy: f64) -> Result<f64> {
    check_energy(energy)?;
    let rest = 2.0 * ELECTRON_MASS * SPEED_OF_LIGHT * SPEED_OF_LIGHT / ELEMENTARY_CHARGE;
    Ok(PLANCK * SPEED_OF_LIGHT / (energy * (rest + energy)).sqrt() / ELEMENTARY_CHARGE * 1e10)
}

/// Interaction constant `σ = 2π m e λ / h²` in rad/(V·Å) (`m = γ m_e`, the relativistic
/// mass; 6.526e-4 at 300 keV).
///
/// # Errors
/// A non-positive or non-finite energy.
pub fn interaction_constant(energy: f64) -> Result<f64> {
    let lambda = wavelength(energy)? * 1e-10;
    let gamma = 1.0 + ELEMENTARY_CHARGE * energy / (ELECTRON_MASS * SPEED_OF_LIGHT * SPEED_OF_LIGHT);
    Ok(2.0 * std::f64::consts::PI * gamma * ELECTRON_MASS * ELEMENTARY_CHARGE * lambda / (PLANCK * PLANCK) * 1e-10)
}

/// `κ = 4πε₀ / (2π a₀ e)` in ASE's units, which turns scattering-factor coefficients into
/// potentials in V·Å (abTEM's `core.constants.kappa`).
pub const KAPPA: f64 = 0.020_886_573_708_296_5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_at_300_kev() {
        // abTEM 1.0.11: energy2wavelength(300e3), energy2sigma(300e3).
        assert!((wavelength(300e3).unwrap() - 0.019_687_488_897_727_67).abs() < 1e-15);
        assert!((interaction_constant(300e3).unwrap() - 0.000_652_616_146_470_088_8).abs() < 1e-15);
        assert!(wavelength(0.0).is_err() && wavelength(f64::NAN).is_err());
    }
}
