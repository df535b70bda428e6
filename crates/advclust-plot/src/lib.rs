//! # advclust-plot
//!
//! The figures a person would rather look at than a JSON report, as in "On the Robustness of
//! Deep Clustering Models": a grid of clean vs adversarial images with their clusters (Fig. 1),
//! confusion matrices clean vs adversarial (Fig. 2) and the epsilon-sweep curves of NMI, ARI
//! and ACC against the perturbation norm (Fig. 3), an attack's training curve of those scores
//! against the victim queries it made, a comparison of attacks, NMI against the images
//! queried on a log-10 axis, one line per attack, clean and adversarial points on three principal
//! components (Fig. 5b) and grouped bars such as the share of images a detector flags on each
//! victim (Fig. 5a). [`figures`] renders them as PNG files with an
//! embedded font, so they look the same on any machine, and refuses bad input with a typed
//! [`figures::FigureError`] instead of panicking.

#![warn(missing_docs)]

pub mod figures;
