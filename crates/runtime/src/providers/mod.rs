//! Model providers over HTTP.
