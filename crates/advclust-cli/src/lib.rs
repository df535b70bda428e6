//! Command-line front end of advclust, black-box adversarial attacks on deep
//! clustering models ("On the Robustness of Deep Clustering Models").
//!
//! The library part holds what the binary needs beyond the other advclust
//! crates; for now that is [`figures`], which renders the paper's figures
//! (image grid, confusion matrices, epsilon-sweep curves) as PNG files with
//! an embedded font, so they look the same on any machine.

#![warn(missing_docs)]

pub mod figures;
