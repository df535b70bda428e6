//! Validated parameters, in the manner of linfa's `ParamGuard`.

/// A set of parameters that is built unchecked and turned into its valid form by [`check`].
///
/// Builders and configs implement this trait; algorithms take only the checked type, so an
/// invalid parameter is reported once, up front, with a typed error.
///
/// [`check`]: ParamGuard::check
pub trait ParamGuard {
    /// The validated parameters.
    type Checked;
    /// The error returned for invalid parameters.
    type Error;

    /// Validates the parameters without consuming them.
    fn check_ref(&self) -> Result<&Self::Checked, Self::Error>;

    /// Validates the parameters and returns their checked form.
    fn check(self) -> Result<Self::Checked, Self::Error>;
}
