//! line-api
