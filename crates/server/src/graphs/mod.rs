//! Graphs that ship with the server.

mod echo;

pub use echo::Echo;
