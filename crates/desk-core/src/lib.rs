//! desk-core
