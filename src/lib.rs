//! advclust
